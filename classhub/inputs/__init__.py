"""What the administrator writes, read and checked: `.env` (`settings`, with the value parsers in
`parsers`), `userlist` (`roster` reads it, `userlist` edits it) and both together (`config`, which
every task loads first). Nothing else in classhub reads those files; everything else is given the
validated `Settings` and `Roster`.
"""
