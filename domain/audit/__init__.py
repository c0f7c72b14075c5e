"""The audit trail of patient data: reading it (`GET /audit`) and verifying its hash chain
(`prm audit verify`). Records are written by `core.audit`, from the API's request path (`api.audit`)."""
