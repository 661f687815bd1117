"""The daemon's HTTP face: the routes (`routes`), their description (`openapi`), what a client may
cost (`limits`) and the bounds on connections (`connections`).

Named `web`, not `http` as issue 15 first proposed: a package directory called `http` shadows the
standard library's for anyone who runs a module of this package as a script (the script's
directory comes first on `sys.path`; `python daemon/cookie_supervisor/cli.py --help` then fails in
`urllib.request`'s `import http.client`).
"""
