"""The portal's rules, below its HTTP routes: accounts, access, cases, recordings, audit.

``web/`` holds the routes and templates and turns requests into calls on these modules; every
SQL statement the portal runs is here (or in ``storage``), so that a rule holds whichever door a
request comes through (JSON API, pages, CLI) and can be tested without HTTP.

* :mod:`.auth` -- ``Principal``, ``AuthService``: logins, throttles, four-eyes, sessions,
  password changes; :mod:`.directory` -- logins checked against an LDAP directory;
* :mod:`.users` -- accounts: add, change, list (the CLI's ``users`` commands);
* :mod:`.access` -- ``Scope``: what a principal may list, play and label;
* :mod:`.cases` -- ``CaseService``: labels, cases, legal holds, access requests;
* :mod:`.recordings` -- ``RecordingService``: search, detail and audio within a scope;
* :mod:`.audit` -- reading the audit trail, and the portal's own events;
* :mod:`.models` -- the portal's tables (cases and labels are in ``storage.cases``);
* :mod:`.security` -- password hashing and strength, tokens, TOTP, user-supplied times;
* :mod:`.errors` -- refusals, each with the HTTP status it is answered with;
* :mod:`.settings` -- ``WebSettings``, built from the configuration by ``app.py``.

Nothing here imports ``fastapi`` or ``web``.
"""
