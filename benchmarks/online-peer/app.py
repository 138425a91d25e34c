"""The seed-style online scoring service, the peer of benchmarks/online.sh: FastAPI under uvicorn,
`POST /predict` with one transaction, the card's profile read from a Redis hash (the one Cardwatch
writes, `cw:card:{card_id}`: the 29 features by name), this transaction's amount put in, one
XGBoost `inplace_predict`, a JSON answer. As the original systems' API: a Redis read bounded by a
timeout (5 ms) and a circuit breaker (open after 5 failures in a row, a probe after a second), the
fallback a default profile, so the API never fails with the cache.

    PEER_MODEL=model.ubj REDIS_PORT=6379 uvicorn app:app --app-dir benchmarks/online-peer --workers 2
"""

import asyncio
import os
import time
from datetime import datetime
from typing import Optional

import numpy as np
import redis.asyncio as aioredis
import xgboost as xgb
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from names import NAMES

REVIEW, DECLINE = 0.5, 0.9
TIMEOUT = float(os.environ.get("REDIS_TIMEOUT", "0.005"))

booster = xgb.Booster(model_file=os.environ["PEER_MODEL"])
booster.set_param({"nthread": 1})
pool = aioredis.ConnectionPool(host="127.0.0.1", port=int(os.environ["REDIS_PORT"]), socket_timeout=TIMEOUT,
                               socket_connect_timeout=TIMEOUT, max_connections=64)
cache = aioredis.Redis(connection_pool=pool)
app = FastAPI(title="seed-style online peer")
AMOUNT = NAMES.index("amount")


class Breaker:
    def __init__(self, threshold=5, open_for=1.0):
        self.threshold, self.open_for, self.failures, self.until = threshold, open_for, 0, 0.0

    def allow(self):
        return self.failures < self.threshold or time.monotonic() >= self.until

    def ok(self):
        self.failures = 0

    def failed(self):
        self.failures += 1
        if self.failures >= self.threshold:
            self.until = time.monotonic() + self.open_for


breaker = Breaker()


class Transaction(BaseModel):
    model_config = ConfigDict(extra="allow")
    transaction_id: str = Field(min_length=1)
    card_id: str = Field(min_length=1)
    amount: float = Field(gt=0)
    timestamp: Optional[datetime] = None
    merchant_id: Optional[str] = None


def default_row(amount):
    row = np.zeros(len(NAMES), dtype=np.float32)
    for name in ("tx_count_5min", "tx_count_1hr", "card_tx_count_1d", "card_tx_count_7d", "card_tx_count_30d",
                 "merchant_tx_count_1d", "merchant_tx_count_7d", "merchant_tx_count_30d", "amount_vs_avg_ratio",
                 "is_new_merchant"):
        row[NAMES.index(name)] = 1
    for name in ("avg_amount_1hr", "max_amount_1hr", "card_avg_amount_1d", "card_avg_amount_7d", "card_avg_amount_30d"):
        row[NAMES.index(name)] = amount
    row[NAMES.index("time_since_last_tx_s")] = 2_592_000
    return row


@app.post("/predict")
async def predict(tx: Transaction):
    source = "fallback"
    row = None
    if breaker.allow():
        try:
            profile = await asyncio.wait_for(cache.hgetall(f"cw:card:{tx.card_id}"), TIMEOUT)
            breaker.ok()
            if profile:
                row = np.array([float(profile.get(n.encode(), 0) or 0) for n in NAMES], dtype=np.float32)
                source = "online"
            else:
                source = "new_card"
        except Exception:
            breaker.failed()
    if row is None:
        row = default_row(tx.amount)
    row[AMOUNT] = tx.amount
    p = float(booster.inplace_predict(row.reshape(1, -1))[0])
    action = "decline" if p >= DECLINE else "review" if p >= REVIEW else "approve"
    return {"transaction_id": tx.transaction_id, "fraud_probability": p, "action": action, "features": source}
