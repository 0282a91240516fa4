"""Click command-line app of dbayes, installed as the ``dbayes_cli`` package."""
