"""The calendar feed: a secret URL per worker (or team) that serves open deadlines as iCalendar.

``tokens`` (I/O: table ``calendar_token``), ``ical`` (building the feed; loading its rows is I/O,
writing the calendar is pure) and ``route`` (``GET /ical/{token}.ics`` on the serve app).
"""
