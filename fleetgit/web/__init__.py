"""The HTTP API and the dashboard (`fleetgit serve`): a FastAPI app over the Python API.

Nothing here is imported by any other command: fastapi, starlette and uvicorn load only with
`fleetgit serve` (auth.py, which the `token` commands use, imports none of them).
"""
