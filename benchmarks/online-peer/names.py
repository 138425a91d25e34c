"""Cardwatch's 29 feature names, in the order of its feature vector (Feature.names)."""
NAMES = [
    "tx_count_5min", "tx_count_1hr", "avg_amount_1hr", "max_amount_1hr", "geo_velocity_kmh", "time_since_last_tx_s",
    "high_risk_merchant_count_1hr", "amount_vs_avg_ratio", "amount", "hour_of_day", "is_weekend", "is_night",
    "distance_from_home_km", "card_tx_count_1d", "card_tx_count_7d", "card_tx_count_30d", "card_avg_amount_1d",
    "card_avg_amount_7d", "card_avg_amount_30d", "small_amount_count_1hr", "is_new_merchant", "merchant_tx_count_1d",
    "merchant_tx_count_7d", "merchant_tx_count_30d", "merchant_fraud_rate_1d", "merchant_fraud_rate_7d",
    "merchant_fraud_rate_30d", "is_online", "is_high_risk_merchant",
]
