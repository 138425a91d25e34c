"""A seed-style fraud-scoring service, the peer of benchmarks/http-peer.sh: FastAPI under uvicorn,
`POST /v1/transactions` with one transaction (the JSON object Cardwatch takes, as
benchmarks/decide.lua sends it), the eight features of the original specification over per-card
deques in process memory (features.py), one XGBoost `inplace_predict` per request, a JSON answer.

    PEER_MODEL=model.ubj uvicorn app:app --app-dir benchmarks/http-peer --workers 2

What such a seed system does, and so what this peer does: nothing is durable (no log, no
warehouse, no idempotency: a repeated id is scored again), and with several uvicorn workers each
worker process has its own memory, so a card's history is split among the workers its requests
happened to reach. Its features are therefore cheaper (and worse) than Cardwatch's, never dearer.
"""

import os
from datetime import datetime
from typing import Optional

import numpy as np
import xgboost as xgb
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from features import Cards

REVIEW, DECLINE = 0.5, 0.9  # probability thresholds of the answer's action

model_path = os.environ.get("PEER_MODEL") or ""
if not os.path.isfile(model_path):
    raise SystemExit(f"app.py: PEER_MODEL={model_path!r} is not a model file (benchmarks/http-peer/train.py makes one)")
booster = xgb.Booster(model_file=model_path)
# One row per call: XGBoost's thread pool only adds wake-ups, and the workers share the cores.
booster.set_param({"nthread": 1})
cards = Cards()
app = FastAPI(title="seed-style peer")


class Transaction(BaseModel):
    """Schema v1's members this peer uses, checked minimally; the others are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    transaction_id: str = Field(min_length=1)
    card_id: str = Field(min_length=1)
    amount: float = Field(gt=0)
    timestamp: datetime
    merchant_id: Optional[str] = None
    merchant_category: Optional[str] = None
    latitude: Optional[float] = Field(default=None, ge=-90, le=90)
    longitude: Optional[float] = Field(default=None, ge=-180, le=180)


@app.post("/v1/transactions")
async def decide(tx: Transaction):
    # async: run on the event loop, one request at a time per worker. A plain `def` would go through
    # FastAPI's thread pool, slower, and its threads could mutate a card's deque under another's scan.
    row = cards.features(tx.card_id, tx.timestamp.timestamp(), tx.amount, tx.merchant_category, tx.latitude,
                         tx.longitude)
    p = float(booster.inplace_predict(np.array([row], dtype=np.float32))[0])
    action = "decline" if p >= DECLINE else "review" if p >= REVIEW else "approve"
    return {"transaction_id": tx.transaction_id, "fraud_probability": p, "action": action}
