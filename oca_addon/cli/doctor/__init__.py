"""`oca-proxy doctor`: measure what the user's OCA does where the proxy and the simulator
guess. plan.py (the calls), read.py (the answers), report.py (report, table, simulator
settings) are pure; runner.py is the embedded mitmproxy; command.py the command."""
