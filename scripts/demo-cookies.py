"""Write a demo Netscape cookie jar that yt-dlp counts as logged in. Its values are fake."""

import os
import sys
import time

path = sys.argv[1]
expires = int(time.time()) + 180 * 86400
rows = [
    "PREF",
    "SID",
    "HSID",
    "SSID",
    "APISID",
    "SAPISID",
    "__Secure-1PSID",
    "__Secure-3PSID",
    "__Secure-1PAPISID",
    "__Secure-3PAPISID",
    "LOGIN_INFO",
]
lines = ["# Netscape HTTP Cookie File", "# demo jar written by cookie-supervisor: fake values", ""]
for name in rows:
    prefix = "#HttpOnly_" if name in ("LOGIN_INFO", "HSID", "SSID") else ""
    lines.append(f"{prefix}.youtube.com\tTRUE\t/\tTRUE\t{expires}\t{name}\tdemo-not-a-real-cookie")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
with os.fdopen(fd, "w") as fh:
    fh.write("\n".join(lines) + "\n")
