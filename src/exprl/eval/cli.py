"""CLI registration (placeholder until the capability is built)."""
from exprl.cli import not_built

def register(subparsers):
    p = subparsers.add_parser('eval', help='eval (not built yet)')
    p.set_defaults(handler=not_built('eval', 'issue 5'))
    p = subparsers.add_parser('report', help='report (not built yet)')
    p.set_defaults(handler=not_built('report', 'issue 5'))
