"""CLI registration (placeholder until the capability is built)."""
from exprl.cli import not_built

def register(subparsers):
    p = subparsers.add_parser('demo', help='demo (not built yet)')
    p.set_defaults(handler=not_built('demo', 'issue 6'))
