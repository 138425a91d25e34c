import CardwatchCore
import Foundation

/// The OpenAPI 3.1 document of the API, maintained by hand next to the routes; a test
/// holds its paths and methods to the router's, so the two cannot drift apart. The
/// currency and country lists are filled in from the validator's own ISO tables.
public enum OpenAPI {
    public static let document =
        template
        .replacingOccurrences(of: "\"__CURRENCIES__\"", with: list(ISOCodes.allCurrencies, null: true))
        .replacingOccurrences(of: "\"__COUNTRIES__\"", with: list(ISOCodes.allCountries, null: true))

    static func list(_ codes: [String], null: Bool) -> String {
        "[" + (codes.map { "\"\($0)\"" } + (null ? ["null"] : [])).joined(separator: ", ") + "]"
    }

    static let template = #"""
        {
          "openapi": "3.1.0",
          "info": {
            "title": "Cardwatch",
            "version": "1.0.0",
            "description": "Real-time card-fraud detection: synchronous decisions, alerts with their reasons, analyst feedback, statistics, pipeline health and the model registry. Errors are application/problem+json. When the server has a token (--token), every POST needs Authorization: Bearer <token>, and so does the live feed; with a read token (--read-token), every GET but /, /openapi.json and /docs needs it (or the write token). A POST with a body must be application/json or application/x-ndjson (415). The Host must be one the server answers for (421) and a browser's Origin the server's own or an allowed one (403). Malformed HTTP gets 400, a URL over the limit 414, a head over the limit 431, another HTTP version 505, a request too slow to arrive 408; at the connection limit with every connection busy, 503."
          },
          "servers": [{"url": "/"}],
          "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
              "Transaction": {
                "type": "object",
                "description": "Schema v1. Identifiers are kept in Unicode NFC; one that is blank or reads as a card number (13-19 digits, Luhn-valid) is refused.",
                "required": ["transaction_id", "amount", "timestamp", "merchant_id"],
                "anyOf": [{"required": ["card_id"]}, {"required": ["card_number"]}],
                "dependentRequired": {"latitude": ["longitude"], "longitude": ["latitude"]},
                "properties": {
                  "transaction_id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"},
                  "card_id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"},
                  "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000000000, "description": "At least the currency's minor unit (ISO 4217: 0.01 USD, 1 JPY, 0.001 BHD)"},
                  "timestamp": {"type": "string", "format": "date-time", "description": "At most --max-event-lead (1 day) ahead of the server's wall clock and --max-event-age (30 days) behind it"},
                  "merchant_id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"},
                  "merchant_category": {"type": ["string", "null"], "pattern": "^[0-9]{4}$"},
                  "currency": {"type": ["string", "null"], "enum": "__CURRENCIES__"},
                  "latitude": {"type": "number", "minimum": -90, "maximum": 90},
                  "longitude": {"type": "number", "minimum": -180, "maximum": 180},
                  "country": {"type": ["string", "null"], "enum": "__COUNTRIES__"},
                  "channel": {"type": ["string", "null"], "enum": ["pos", "online", "atm", null]},
                  "customer_id": {"type": ["string", "null"], "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"},
                  "card_number": {"$ref": "#/components/schemas/CardNumber"}
                }
              },
              "CardNumber": {
                "type": "string", "pattern": "^[0-9]+([ -][0-9]+)*$",
                "description": "A card number (PAN, 12-19 digits, Luhn check digit; spaces or dashes between digits allowed). Accepted only where the server has a PAN secret, to derive card_id = HMAC-SHA256(secret, digits) in lower-case hex; never stored (dead letters show it masked, first six and last four digits). With card_id too, the two must agree."
              },
              "GatewayTransaction": {
                "type": "object",
                "description": "The payment gateway body of the systems Cardwatch replaces. merchant is merchant_id, user_id is customer_id, location is kept as given in the stored record (\"Online\" sets the online channel); other schema v1 members pass through.",
                "required": ["transaction_id", "card_number", "amount"],
                "anyOf": [{"required": ["merchant_id"]}, {"required": ["merchant"]}],
                "properties": {
                  "transaction_id": {"type": "string", "minLength": 1, "maxLength": 64},
                  "user_id": {"type": "string", "minLength": 1, "maxLength": 64},
                  "card_number": {"$ref": "#/components/schemas/CardNumber"},
                  "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000000000},
                  "merchant_id": {"type": "string", "minLength": 1, "maxLength": 64},
                  "merchant": {"type": "string", "minLength": 1, "maxLength": 64},
                  "merchant_category": {"type": "string"},
                  "location": {"type": "string"},
                  "timestamp": {"type": "string", "format": "date-time", "description": "Default: now"}
                }
              },
              "PredictRequest": {
                "type": "object",
                "required": ["transaction_id", "amount", "merchant_id"],
                "anyOf": [{"required": ["card_id"]}, {"required": ["user_id"]}],
                "properties": {
                  "transaction_id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"},
                  "user_id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"},
                  "card_id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"},
                  "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000000000},
                  "merchant_id": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"},
                  "is_international": {"type": ["boolean", "null"]},
                  "timestamp": {"type": "string", "format": "date-time"}
                }
              },
              "Reason": {
                "type": "object",
                "required": ["kind", "name"],
                "properties": {
                  "kind": {"type": "string", "enum": ["feature", "rule"]},
                  "name": {"type": "string"},
                  "value": {"type": "number"},
                  "contribution": {"type": "number"},
                  "detail": {"type": "string"}
                }
              },
              "Decision": {
                "type": "object",
                "required": ["transaction_id", "fraud_probability", "risk_tier", "action", "reasons", "model_version", "latency_ms"],
                "properties": {
                  "transaction_id": {"type": "string"},
                  "fraud_probability": {"type": "number", "minimum": 0, "maximum": 1},
                  "risk_tier": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
                  "action": {"type": "string", "enum": ["approve", "review", "decline"]},
                  "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
                  "model_version": {"type": "integer"},
                  "latency_ms": {"type": "number"},
                  "duplicate": {"type": "boolean"},
                  "event_time": {"type": "string", "format": "date-time", "description": "the transaction's own time (simulated for the live generator, whose clock runs ahead of the wall clock)"},
                  "decided_at": {"type": "string", "format": "date-time", "description": "when it was decided (wall clock)"},
                  "mode": {"type": "string", "enum": ["online"], "description": "/predict?mode=online only: scored from the online store, not decided by the stream"},
                  "features": {"type": "string", "enum": ["online", "new_card", "fallback"], "description": "/predict?mode=online only: the card's features from its profile, from defaults (no profile), or from defaults because the store did not answer in time"}
                }
              },
              "Alert": {
                "type": "object",
                "required": ["transaction_id", "card_id", "merchant_id", "amount", "timestamp", "fraud_probability", "risk_tier", "action", "model_version", "reasons", "decided_at"],
                "properties": {
                  "transaction_id": {"type": "string"}, "card_id": {"type": "string"}, "merchant_id": {"type": "string"},
                  "amount": {"type": "number"}, "timestamp": {"type": "string", "format": "date-time"},
                  "fraud_probability": {"type": "number"}, "risk_tier": {"type": "string"}, "action": {"type": "string"},
                  "model_version": {"type": "integer"}, "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
                  "fraud_pattern": {"type": "string"}, "feedback": {"type": "string", "enum": ["fraud", "legitimate"]},
                  "decided_at": {"type": "string", "format": "date-time", "description": "when it was decided (wall clock)"},
                  "event_time": {"type": "string", "format": "date-time", "description": "the transaction's own time, as timestamp (simulated for the live generator)"}
                }
              },
              "Feedback": {
                "type": "object",
                "required": ["label"],
                "properties": {
                  "label": {"type": "string", "enum": ["fraud", "legitimate"]},
                  "analyst": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"},
                  "note": {"type": ["string", "null"], "minLength": 1, "maxLength": 2000, "pattern": "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"}
                }
              },
              "Stage": {
                "type": "object",
                "required": ["status", "since", "restarts", "consecutive_failures"],
                "properties": {
                  "status": {"type": "string", "enum": ["starting", "running", "restarting", "down", "stopped"]},
                  "since": {"type": "string", "format": "date-time"}, "restarts": {"type": "integer"},
                  "consecutive_failures": {"type": "integer"}, "last_error": {"type": ["string", "null"]},
                  "last_error_at": {"type": ["string", "null"]}, "next_attempt_at": {"type": ["string", "null"]},
                  "failing_since": {"type": ["string", "null"]}
                }
              },
              "Health": {
                "type": "object",
                "required": ["status", "healthy", "checked_at", "stages", "alerts", "last_check"],
                "properties": {
                  "status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]},
                  "healthy": {"type": "boolean", "description": "false when a stage is down or the health check has stopped reporting"},
                  "checked_at": {"type": "string", "format": "date-time"},
                  "started_at": {"type": ["string", "null"]},
                  "stages": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Stage"}},
                  "alerts": {"type": "array", "items": {"$ref": "#/components/schemas/Object"}},
                  "processed": {"type": ["integer", "null"]}, "alerts_raised": {"type": ["integer", "null"]},
                  "lag": {"type": ["integer", "null"]}, "dead_letters_total": {"type": ["integer", "null"]},
                  "last_check": {"type": ["object", "null"]},
                  "warehouse_unavailable": {"type": "string", "description": "present while the warehouse (PostgreSQL) cannot be reached: why; the pipeline waits and resumes by itself"},
                  "log_unavailable": {"type": "string", "description": "present while the log (a Kafka cluster) cannot be reached: why; the pipeline waits and resumes by itself"}
                }
              },
              "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                  "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
                  "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "problem": {"type": "string"}}}}
                }
              },
              "Object": {"type": "object"}
            },
            "responses": {
              "Problem": {"description": "The problem, as application/problem+json", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            },
            "parameters": {
              "limit": {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
              "transaction_id": {"name": "transaction_id", "in": "path", "required": true, "schema": {"type": "string"}}
            }
          },
          "paths": {
            "/v1/transactions": {
              "post": {
                "summary": "Decide one transaction (a JSON object) or many (a JSON array or JSON Lines), synchronously",
                "security": [{"bearer": []}, {}],
                "requestBody": {"required": true, "content": {
                  "application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/Transaction"}, {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Transaction"}}]}},
                  "application/x-ndjson": {"schema": {"type": "string"}}
                }},
                "responses": {
                  "200": {"description": "The decision (one object), or {decisions, invalid} for several", "content": {"application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/Decision"}, {"$ref": "#/components/schemas/Object"}]}}}},
                  "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"},
                  "413": {"$ref": "#/components/responses/Problem"}, "415": {"$ref": "#/components/responses/Problem"},
                  "422": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"},
                  "503": {"$ref": "#/components/responses/Problem"}
                }
              }
            },
            "/predict": {
              "post": {
                "summary": "Decide a transaction given in the original systems' request shape (a body of pre-computed features, e.g. transaction_amount or num_txns_last_hour, gets a 422 naming the transaction's fields: Cardwatch computes the features itself)",
                "description": "mode=stream (the default) appends it to the log and answers with the stream's decision; mode=online scores it from the online store's card and merchant profiles without the stream (nothing is appended), falling back to a first transaction's features when the store is slow or away",
                "security": [{"bearer": []}, {}],
                "parameters": [{"name": "mode", "in": "query", "required": false, "schema": {"type": "string", "enum": ["stream", "online"]}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}},
                "responses": {
                  "200": {"description": "The decision", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}},
                  "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"},
                  "413": {"$ref": "#/components/responses/Problem"}, "415": {"$ref": "#/components/responses/Problem"},
                  "422": {"$ref": "#/components/responses/Problem"}, "429": {"$ref": "#/components/responses/Problem"},
                  "503": {"$ref": "#/components/responses/Problem"}
                }
              }
            },
            "/transaction": {
              "post": {
                "summary": "Decide a transaction given as the original systems' payment gateways send it (card_number, user_id, merchant, location); the same answer as /v1/transactions",
                "security": [{"bearer": []}, {}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GatewayTransaction"}}}},
                "responses": {
                  "200": {"description": "The decision", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}},
                  "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"},
                  "413": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"},
                  "503": {"$ref": "#/components/responses/Problem"}
                }
              }
            },
            "/alerts/recent": {
              "get": {
                "summary": "The latest alerts (default 20)",
                "security": [{"bearer": []}, {}],
                "parameters": [{"$ref": "#/components/parameters/limit"}],
                "responses": {"401": {"$ref": "#/components/responses/Problem"}, "200": {"description": "Alerts, newest first", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}}}}},
                  "400": {"$ref": "#/components/responses/Problem"}}
              }
            },
            "/alerts/stream": {
              "get": {
                "summary": "The live alert feed, a WebSocket: every committed alert as a JSON text message (a Decision with card_id, merchant_id, amount, timestamp)",
                "security": [{"bearer": []}, {}],
                "responses": {"401": {"$ref": "#/components/responses/Problem"}, "101": {"description": "Switching to the WebSocket protocol"}, "426": {"$ref": "#/components/responses/Problem"}}
              }
            },
            "/": {
              "get": {"summary": "The live dashboard", "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}
            },
            "/alerts/card/{card_id}": {
              "get": {
                "summary": "A card's alerts, latest event first",
                "security": [{"bearer": []}, {}],
                "parameters": [{"name": "card_id", "in": "path", "required": true, "schema": {"type": "string"}}, {"$ref": "#/components/parameters/limit"}],
                "responses": {"401": {"$ref": "#/components/responses/Problem"}, "200": {"description": "Alerts", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}}}}},
                  "400": {"$ref": "#/components/responses/Problem"}}
              }
            },
            "/alerts/{transaction_id}": {
              "get": {
                "summary": "One alert with its reasons",
                "security": [{"bearer": []}, {}],
                "parameters": [{"$ref": "#/components/parameters/transaction_id"}],
                "responses": {"401": {"$ref": "#/components/responses/Problem"}, "200": {"description": "The alert", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Alert"}}}},
                  "404": {"$ref": "#/components/responses/Problem"}}
              }
            },
            "/alerts/{transaction_id}/feedback": {
              "post": {
                "summary": "An analyst's verdict; it becomes a label event for the merchant fraud rates and retraining",
                "security": [{"bearer": []}, {}],
                "parameters": [{"$ref": "#/components/parameters/transaction_id"}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Feedback"}}}},
                "responses": {"200": {"description": "Recorded", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Object"}}}},
                  "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"},
                  "404": {"$ref": "#/components/responses/Problem"}, "413": {"$ref": "#/components/responses/Problem"},
                  "415": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}}
              }
            },
            "/v1/transactions/{transaction_id}/feedback": {
              "post": {
                "summary": "An analyst's verdict on any decided transaction (a missed fraud too), with the analyst's name and a note; stored, and appended to the labels log (confirmed-fraud figures, merchant fraud rates, retraining)",
                "security": [{"bearer": []}, {}],
                "parameters": [{"$ref": "#/components/parameters/transaction_id"}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"allOf": [{"$ref": "#/components/schemas/Feedback"}, {"required": ["label", "analyst"]}]}}}},
                "responses": {"200": {"description": "Recorded", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Object"}}}},
                  "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"},
                  "404": {"$ref": "#/components/responses/Problem"}, "413": {"$ref": "#/components/responses/Problem"},
                  "415": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}}
              }
            },
            "/stats/summary": {
              "get": {
                "summary": "The last 24 hours of processing: volume, alert rate (alerts / transactions), confirmed frauds (labels and feedback) with their rate and amount, alert precision (confirmed frauds among alerts with a known outcome), alerts by tier and pattern, latency",
                "security": [{"bearer": []}, {}],
                "responses": {"401": {"$ref": "#/components/responses/Problem"}, "200": {"description": "Summary", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Object"}}}}}
              }
            },
            "/stats/timeseries": {
              "get": {
                "summary": "Bucketed counts over processing time: transactions, alerts, alert rate, mean latency",
                "security": [{"bearer": []}, {}],
                "parameters": [
                  {"name": "bucket", "in": "query", "required": false, "schema": {"type": "string", "enum": ["1m", "5m", "15m", "1h", "1d"]}, "description": "a duration from 60s to 1d (60, 90s, 5m, 1h, …); default 60s"},
                  {"name": "window", "in": "query", "required": false, "schema": {"type": "string", "enum": ["15m", "1h", "6h", "24h", "7d", "30d"]}, "description": "a duration from 60s to 30d; default 1h"}
                ],
                "responses": {"401": {"$ref": "#/components/responses/Problem"}, "200": {"description": "Buckets", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Object"}}}},
                  "400": {"$ref": "#/components/responses/Problem"}}
              }
            },
            "/pipeline/health": {
              "get": {
                "summary": "Health now: each stage's status (running, restarting, down) with its restarts and last error, the system alerts active, and the last health check's report (stale when older than two intervals)",
                "security": [{"bearer": []}, {}],
                "responses": {"401": {"$ref": "#/components/responses/Problem"}, "200": {"description": "Health", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                  "404": {"$ref": "#/components/responses/Problem"}}
              }
            },
            "/pipeline/alerts": {
              "get": {
                "summary": "System-level alerts, newest first",
                "security": [{"bearer": []}, {}],
                "parameters": [{"$ref": "#/components/parameters/limit"}],
                "responses": {"401": {"$ref": "#/components/responses/Problem"}, "200": {"description": "Alerts", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Object"}}}}},
                  "400": {"$ref": "#/components/responses/Problem"}}
              }
            },
            "/metrics": {
              "get": {
                "summary": "Prometheus text exposition",
                "security": [{"bearer": []}, {}],
                "responses": {"401": {"$ref": "#/components/responses/Problem"}, "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}
              }
            },
            "/models": {
              "get": {
                "summary": "Registered models with their stage and test metrics",
                "security": [{"bearer": []}, {}],
                "responses": {"401": {"$ref": "#/components/responses/Problem"}, "200": {"description": "Models", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Object"}}}}}}
              }
            },
            "/models/{version}/promote": {
              "post": {
                "summary": "Promote a version by the registry's rule (force=true: whatever the rule says); a promoted model is hot-swapped in, and every instance sharing the registry follows it",
                "security": [{"bearer": []}, {}],
                "parameters": [{"name": "version", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647}},
                  {"name": "force", "in": "query", "required": false, "schema": {"type": "boolean"}}],
                "responses": {"200": {"description": "The verdict", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Object"}}}},
                  "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"},
                  "404": {"$ref": "#/components/responses/Problem"}, "415": {"$ref": "#/components/responses/Problem"}}
              }
            },
            "/openapi.json": {
              "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Object"}}}}}}
            },
            "/docs": {
              "get": {"summary": "This document for people", "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}
            }
          }
        }
        """#

    /// A page that renders the document, served from the binary (no CDN).
    public static let page = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Cardwatch API</title>
        <style>
        body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
        h1{margin-bottom:.2rem} .op{border:1px solid #ddd;border-radius:6px;margin:.8rem 0;padding:.6rem .9rem}
        .m{font-weight:700;display:inline-block;min-width:4.2rem} .get{color:#06c} .post{color:#080}
        code{background:#f4f4f4;padding:0 .25rem;border-radius:3px} small{color:#666}
        </style></head><body>
        <h1>Cardwatch API</h1><p id="desc"></p><div id="ops">Loading <code>/openapi.json</code>…</div>
        <script>
        fetch('/openapi.json').then(r => r.json()).then(doc => {
          document.getElementById('desc').textContent = doc.info.description;
          const ops = document.getElementById('ops'); ops.textContent = '';
          for (const [path, item] of Object.entries(doc.paths)) {
            for (const [method, op] of Object.entries(item)) {
              const div = document.createElement('div'); div.className = 'op';
              const params = (op.parameters || []).map(p => p.$ref ? p.$ref.split('/').pop() : p.name);
              const codes = Object.keys(op.responses || {}).join(', ');
              div.innerHTML = `<span class="m ${method}">${method.toUpperCase()}</span><code>${path}</code>
                <div>${op.summary || ''}</div><small>${params.length ? 'parameters: ' + params.join(', ') + ' · ' : ''}responses: ${codes}</small>`;
              ops.appendChild(div);
            }
          }
        });
        </script></body></html>
        """#
}
