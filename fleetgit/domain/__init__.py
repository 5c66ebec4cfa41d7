"""The fleet's concepts, one package each: its event types, its pure fold into projection rows, its
commands.
"""
