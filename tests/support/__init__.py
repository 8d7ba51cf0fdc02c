"""TEST SCAFFOLDING shared by the test suite (never imported by ``o365lib``)."""
