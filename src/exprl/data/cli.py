"""CLI registration (placeholder until the capability is built)."""
from exprl.cli import not_built

def register(subparsers):
    p = subparsers.add_parser('data', help='data (not built yet)')
    p.set_defaults(handler=not_built('data', 'issue 2'))
