from tests.service.support import redis_server  # noqa: F401
