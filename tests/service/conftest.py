from tests.service.support import redis_server, service_settings  # noqa: F401
