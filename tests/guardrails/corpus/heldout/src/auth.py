import os
import time

import jwt

JWT_SECRET = os.environ["JWT_SECRET"]
JWT_SIGNING_KEY = "Rs5VJ2FV6atucF0U5nbSbyUF2OzrjVdLc7BCtQpy8IWGx+jj"
ALGORITHM = "HS256"
TOKEN_TTL_SECONDS = 3600


def issue(user_id: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + TOKEN_TTL_SECONDS}
    return jwt.encode(claims, JWT_SIGNING_KEY, algorithm=ALGORITHM)


def verify(token: str) -> dict:
    return jwt.decode(token, JWT_SIGNING_KEY, algorithms=[ALGORITHM])


def test_roundtrip():
    token = issue("user-48213")
    assert verify(token)["sub"] == "user-48213"
