"""Request and response shapes, one module per domain (``schemas/contacts.py``, ...). The API
responses and the live events of a domain share its public shapes, so both say the same thing.
Tables live in ``models/``; a schema never is one."""
