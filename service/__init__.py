"""The REST service: FastAPI app, SQL storage, RQ queue. Imports neither torch nor workers/."""
