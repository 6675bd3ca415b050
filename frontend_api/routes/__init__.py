"""The API's routers, one per area; `frontend_api.app.create_app` includes them all."""
