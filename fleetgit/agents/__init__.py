"""The agents' own interface: the MCP server (`fleetgit mcp`) and the wiring of fleetgit into
agents' sessions (`fleetgit agents install`).

tools.py is the tool catalogue and one pilot's session over the Python API, without the MCP
SDK; server.py puts it on MCP (the only module importing `mcp`); install.py writes the clients'
configuration.
"""
