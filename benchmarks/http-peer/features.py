"""The eight features of the original specification (DESIGN.md), the way a seed system computes
them: one `collections.deque` of recent events per card, scanned on every transaction. Used by
both train.py (over generated history) and app.py (per request), so training and serving agree.

Definitions follow Sources/CardwatchFeatures/Feature.swift's table for these eight:
- tx_count_5min, tx_count_1hr: the card's events in (t - 5 min, t] / (t - 1 h, t], this one included;
- avg_amount_1hr, max_amount_1hr: mean and max amount over (t - 1 h, t], this one included;
- geo_velocity_kmh: km from the card's latest earlier located event / hours since it (at least one
  minute); 0 without coordinates or when no located event lies within 30 days;
- time_since_last_tx_s: seconds since the card's latest earlier event, capped at 30 days (the cap on
  a first transaction);
- high_risk_merchant_count_1hr: events at high-risk categories in (t - 1 h, t], this one included;
- amount_vs_avg_ratio: amount / the card's mean amount over UTC days [day(t) - 29, day(t)], this one
  excluded; 1 when there is no earlier event in that window.
"""

import math
from collections import deque
from datetime import datetime

NAMES = ["tx_count_5min", "tx_count_1hr", "avg_amount_1hr", "max_amount_1hr", "geo_velocity_kmh",
         "time_since_last_tx_s", "high_risk_merchant_count_1hr", "amount_vs_avg_ratio"]

HORIZON_S = 30 * 86400.0
# MerchantRisk.swift: gambling, money transfer, quasi-cash/crypto, gift cards (codes or names).
HIGH_RISK = {"7995", "4829", "6051", "5947", "gambling", "betting", "money transfer", "money_transfer", "crypto",
             "quasi-cash", "gift cards", "gift_cards"}
EARTH_RADIUS_KM = 6371.0088  # Geo.swift


def is_high_risk(category):
    return category is not None and (category in HIGH_RISK or category.lower() in HIGH_RISK)


def epoch_seconds(timestamp):
    """RFC 3339 text (as `cardwatch generate` writes it) to seconds since the epoch."""
    return datetime.fromisoformat(timestamp).timestamp()


def haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class Cards:
    """Per-card history in process memory: card id -> deque of (t, amount, high_risk, lat, lon),
    in arrival order, trimmed to the 30-day horizon. Nothing is written anywhere."""

    def __init__(self):
        self.history = {}

    def features(self, card_id, t, amount, category, lat, lon):
        """The eight features of this transaction, then the transaction joins its card's history."""
        events = self.history.get(card_id)
        if events is None:
            events = self.history[card_id] = deque()
        risky = is_high_risk(category)
        day = t // 86400
        c5 = c1h = 1
        sum1h = max1h = amount
        risky1h = 1 if risky else 0
        sum30 = 0.0
        n30 = 0
        previous = None
        located = None  # (t, lat, lon) of the latest earlier located event
        for (te, a, r, la, lo) in events:
            if te > t:  # arrived earlier but happened later: not an earlier event
                continue
            if previous is None or te >= previous:
                previous = te
            if la is not None and (located is None or te >= located[0]):
                located = (te, la, lo)
            age = t - te
            if age < 3600:
                c1h += 1
                sum1h += a
                if a > max1h:
                    max1h = a
                if r:
                    risky1h += 1
                if age < 300:
                    c5 += 1
            if te // 86400 >= day - 29:
                sum30 += a
                n30 += 1
        velocity = 0.0
        if lat is not None and lon is not None and located is not None and t - located[0] <= HORIZON_S:
            hours = max(t - located[0], 60.0) / 3600
            velocity = haversine_km(located[1], located[2], lat, lon) / hours
        since = HORIZON_S if previous is None else min(t - previous, HORIZON_S)
        ratio = amount / (sum30 / n30) if n30 and sum30 > 0 else 1.0

        events.append((t, amount, risky, lat if lon is not None else None, lon))
        while events and events[0][0] < t - HORIZON_S:  # the horizon of every window above
            events.popleft()
        return [c5, c1h, sum1h / c1h, max1h, velocity, since, risky1h, ratio]
