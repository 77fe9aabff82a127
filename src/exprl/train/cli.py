"""CLI registration (placeholder until the capability is built)."""
from exprl.cli import not_built

def register(subparsers):
    p = subparsers.add_parser('train', help='train (not built yet)')
    p.set_defaults(handler=not_built('train', 'issue 4'))
