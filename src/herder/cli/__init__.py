"""The ``herder`` command line: a client of the REST API, never of the database.

main.py     the Typer app, global options, ``server`` and ``version``
jobs.py     ``herder job …``
runs.py     ``herder run``, ``runs``, ``logs``, ``cancel``, ``retry``
common.py   options and argument parsing shared by the commands
client.py   the httpx client; every failure becomes one ``CliError``
render.py   Rich tables for people, JSON and YAML for scripts
"""
