"""pyjwt_negotiate.py: PyJWT (Debian python3-jwt) encoding the same header and claims as
the SDK's negotiate token. Prints "<tokens per second>"."""
import sys
import time

import jwt

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
key = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
count = 0
start = time.perf_counter()
deadline = start + seconds
t = start
while t < deadline:
    for _ in range(200):
        iat = int(time.time())
        jwt.encode({"asrs.s.uid": "alice", "nameid": "alice", "role": "admin", "nbf": iat,
                    "exp": iat + 3600, "iat": iat, "iss": "azure-signalr",
                    "aud": "https://demo.service.signalr.net/client/?hub=chat"},
                   key, algorithm="HS256", headers={"typ": "JWT"})
    count += 200
    t = time.perf_counter()
print(f"{count / (t - start):.0f}")
