"""CLI registration (placeholder until the capability is built)."""
from exprl.cli import not_built

def register(subparsers):
    p = subparsers.add_parser('rubrics', help='rubrics (not built yet)')
    p.set_defaults(handler=not_built('rubrics', 'issue 3'))
    p = subparsers.add_parser('judge', help='judge (not built yet)')
    p.set_defaults(handler=not_built('judge', 'issue 3'))
