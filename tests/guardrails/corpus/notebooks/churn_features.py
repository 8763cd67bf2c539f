import pandas as pd
import numpy as np

OPENAI_KEY = "sk-cmR3GQc7wQeFlOn186axkAvyMfMI03DuA9yHbJVaveoIhwi4"

sample = pd.DataFrame(
    [
        {"id": 48213, "email": "m.jansen@kpnmail.nl", "plan": "pro", "seats": 12},
        {"id": 48299, "email": "k.nakamura@softbank.ne.jp", "plan": "team", "seats": 4},
        {"id": 48302, "email": "analytics-bot@example.com", "plan": "free", "seats": 1},
    ]
)

def features(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["log_seats"] = np.log1p(out["seats"])
    out["is_paid"] = out["plan"].isin(["pro", "team"]).astype(int)
    return out

np.random.seed(20261204)
weights = np.random.normal(0, 0.02, size=(16, 8))
print(features(sample).describe())
