"""The API described: the OpenAPI 3.1 document and the interactive page that shows it.

``describe`` holds the documentation-only ``@operation`` decorator the views carry, ``spec``
builds the document from the URL map and the pydantic models, ``components`` holds its shared
parts, and ``views`` serves it at ``/api/v1/openapi.json`` with Swagger UI at ``/api/docs``.
"""

from jobcast.api.openapi.describe import JOB_SUBMISSION, Operation, Reply, operation
from jobcast.api.openapi.spec import build_spec

__all__ = ["JOB_SUBMISSION", "Operation", "Reply", "build_spec", "operation"]
