/// The live dashboard, one page served from the binary (no CDN, no build step): the alert
/// feed over the WebSocket, charts of the last hour, the production model, pipeline health,
/// and an alert's reasons with the two feedback buttons.
enum Dashboard {
    static let page = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Cardwatch</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        :root{--bg:#0f1419;--panel:#182029;--line:#2a3542;--text:#dde3ea;--dim:#8a97a6;--crit:#ff5d5d;--high:#ffb020;--ok:#3ccf7a}
        *{box-sizing:border-box} body{margin:0;overflow-anchor:none;font:14px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--text)}
        header{display:flex;gap:1.5rem;align-items:baseline;padding:.8rem 1.2rem;border-bottom:1px solid var(--line)}
        header h1{font-size:1.2rem;margin:0} .dim{color:var(--dim)} .ok{color:var(--ok)} .bad{color:var(--crit)}
        main{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:1rem;padding:1rem 1.2rem}
        section{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem}
        h2{font-size:.95rem;margin:0 0 .6rem;color:var(--dim);font-weight:600;text-transform:uppercase;letter-spacing:.04em}
        table{width:100%;border-collapse:collapse} td,th{padding:.3rem .4rem;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
        tbody tr{cursor:pointer} tbody tr:hover{background:#1f2a36} .tier-critical{color:var(--crit)} .tier-high{color:var(--high)}
        canvas{width:100%;height:90px;display:block;margin-bottom:.6rem} .charts span{font-size:.8rem;color:var(--dim)}
        button{background:#23303d;color:var(--text);border:1px solid var(--line);border-radius:5px;padding:.35rem .8rem;cursor:pointer;margin-right:.5rem}
        button:hover{border-color:var(--dim)} #detail pre{white-space:pre-wrap;margin:.4rem 0}
        .bar{display:inline-block;height:.6rem;background:var(--high);vertical-align:middle;margin-right:.3rem}
        .scroll{overflow-x:auto}
        </style></head><body>
        <header><h1>Cardwatch</h1><span id="model" class="dim">model …</span><span id="health" class="dim">health …</span>
        <span id="feed" class="dim">feed: connecting…</span></header>
        <main>
        <section><h2>Live alerts <span id="held"></span></h2>
          <div class="scroll"><table><thead><tr><th title="the transaction's own time, UTC (simulated for the live generator: ahead of the wall clock)">event time</th><th title="when Cardwatch decided it: wall clock, UTC">decided</th><th>transaction</th><th>card</th><th>amount</th><th>p(fraud)</th><th>tier</th><th>action</th></tr></thead>
          <tbody id="alerts" onmouseleave="release()"></tbody></table></div></section>
        <div>
        <section class="charts"><h2>Last hour</h2>
          <span>transactions / minute</span><canvas id="c-tx"></canvas>
          <span>alert rate (alerts / transactions)</span><canvas id="c-rate"></canvas>
          <span>mean latency, append → decision (ms)</span><canvas id="c-lat"></canvas></section>
        <section id="detail" style="margin-top:1rem"><h2>Alert</h2><div class="dim">Select an alert.</div></section>
        </div></main>
        <script>
        const $ = id => document.getElementById(id);
        const alerts = new Map();
        function token() { return sessionStorage.getItem('cardwatch-token') || ''; }
        // With a token on the server (--read-token for reads, --token for writes), every fetch
        // carries the one the user gave, asked for on the first 401 and kept for the session.
        let declined = false;
        function askToken(why) {
          if (declined) return false;
          const t = prompt(why);
          if (!t) { declined = true; return false; }
          sessionStorage.setItem('cardwatch-token', t.replace(/^Bearer\s+/i, ''));
          return true;
        }
        const plainFetch = window.fetch.bind(window);
        window.fetch = async (url, options = {}) => {
          const sent = token();
          const headers = new Headers(options.headers || {});
          if (sent) headers.set('Authorization', 'Bearer ' + sent);
          const r = await plainFetch(url, {...options, headers});
          if (r.status !== 401) return r;
          const write = (options.method || 'GET') !== 'GET';
          if (token() !== sent || askToken(write ? 'Token for writes (--token)' : 'Token for reads (--read-token or --token)')) {
            return window.fetch(url, options);
          }
          return r;
        };
        function row(a) {
          const tr = document.createElement('tr');
          tr.dataset.id = a.transaction_id;
          // Event time (the transaction's own, simulated for the live generator: days ahead of the wall clock)
          // and decision time (wall clock), side by side so neither passes for the other.
          // Both in UTC: the event time with its date (MM-DD, days ahead for the generator), the decision time of day.
          // A long id keeps its start and its distinctive end (the whole id is its title and in the detail).
          const id = a.transaction_id.length > 24 ? a.transaction_id.slice(0, 6) + '…' + a.transaction_id.slice(-14) : a.transaction_id;
          const cells = [new Date(a.event_time || a.timestamp).toISOString().slice(5, 19).replace('T', ' '),
            new Date(a.decided_at).toISOString().slice(11, 19), id, a.card_id,
            Number(a.amount).toFixed(2), Number(a.fraud_probability).toFixed(3), a.risk_tier, a.action];
          cells.forEach((c, i) => { const td = document.createElement('td'); td.textContent = c;
            if (i === 2) td.title = a.transaction_id;
            if (i === 6) td.className = 'tier-' + a.risk_tier; tr.appendChild(td); });
          tr.onclick = () => show(a.transaction_id);
          return tr;
        }
        // While the pointer is on the table, new alerts wait: rows pushed down under it would
        // make a click open the alert that arrived instead of the one aimed at. Scroll anchoring
        // is off (body) for the same reason: when the held rows go in, the browser would scroll
        // the page to keep a row in place, and the detail's buttons would move under the pointer.
        const held = [];
        function add(a, live) {
          alerts.set(a.transaction_id, a);
          if ($('alerts').matches(':hover')) { held.push([a, live]); $('held').textContent = `· ${held.length} new`; return; }
          insert(a, live);
        }
        function release() {
          for (const [a, live] of held.splice(0)) insert(a, live);
          $('held').textContent = '';
        }
        function insert(a, live) {
          const body = $('alerts');
          const tr = row(a);
          tr.dataset.live = live ? '1' : '0';  // arrived over the WebSocket (the browser test looks for these)
          body.insertBefore(tr, body.firstChild);
          while (body.children.length > 100) body.removeChild(body.lastChild);
        }
        async function show(id) {
          const r = await fetch('/alerts/' + encodeURIComponent(id));
          const a = r.ok ? await r.json() : alerts.get(id);
          const d = $('detail'); d.innerHTML = '<h2>Alert</h2>';
          const head = document.createElement('div');
          head.innerHTML = `<b></b> · card <span></span> · $<span></span> · p=<span></span> · <span></span>`;
          const s = head.querySelectorAll('b,span');
          [a.transaction_id, a.card_id, Number(a.amount).toFixed(2), Number(a.fraud_probability).toFixed(4),
           a.risk_tier + ' → ' + a.action + (a.feedback ? ' · feedback: ' + a.feedback : '')].forEach((t, i) => s[i].textContent = t);
          d.appendChild(head);
          const list = document.createElement('div');
          const max = Math.max(...(a.reasons || []).map(x => Math.abs(x.contribution || 0)), 1e-9);
          for (const x of a.reasons || []) {
            const line = document.createElement('div');
            const bar = document.createElement('span'); bar.className = 'bar';
            bar.style.width = (x.kind === 'rule' ? 40 : Math.round(120 * Math.abs(x.contribution) / max)) + 'px';
            const text = document.createElement('span');
            text.textContent = x.kind === 'rule' ? `rule ${x.name}: ${x.detail || ''}`
              : `${x.name} = ${Number(x.value).toPrecision(4)} (${x.contribution > 0 ? '+' : ''}${Number(x.contribution).toFixed(3)})`;
            line.append(bar, text); list.appendChild(line);
          }
          d.appendChild(list);
          const buttons = document.createElement('div'); buttons.style.marginTop = '.6rem';
          for (const label of ['fraud', 'legitimate']) {
            const b = document.createElement('button'); b.textContent = 'Mark ' + label;
            b.onclick = async () => {
              await fetch(`/alerts/${encodeURIComponent(id)}/feedback`,
                {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({label})});
              show(id);
            };
            buttons.appendChild(b);
          }
          d.appendChild(buttons);
        }
        function chart(canvas, values, color, format) {
          const ctx = canvas.getContext('2d'); const w = canvas.width = canvas.clientWidth * devicePixelRatio;
          const h = canvas.height = canvas.clientHeight * devicePixelRatio; ctx.clearRect(0, 0, w, h);
          if (!values.length) return;
          const max = Math.max(...values, 1e-9);
          // One bar per bucket, the newest on the right, an hour being 60 of them.
          const slots = Math.max(60, values.length), bw = w / slots;
          ctx.fillStyle = color;
          values.forEach((v, i) => { const bh = (h - 16 * devicePixelRatio) * v / max;
            ctx.fillRect(w - (values.length - i) * bw + 1, h - bh, Math.max(1, bw - 2), bh); });
          ctx.fillStyle = '#8a97a6'; ctx.font = `${11 * devicePixelRatio}px system-ui`;
          ctx.fillText('max ' + format(max), 4, 12 * devicePixelRatio);
        }
        async function refresh() {
          try {
            const t = await (await fetch('/stats/timeseries?bucket=1m&window=1h')).json();
            chart($('c-tx'), t.buckets.map(b => b.transactions), '#5aa9ff', v => v.toFixed(0));
            chart($('c-rate'), t.buckets.map(b => b.alert_rate), '#ff5d5d', v => (100 * v).toFixed(2) + ' %');
            chart($('c-lat'), t.buckets.map(b => b.mean_latency_ms || 0), '#3ccf7a', v => v.toFixed(2) + ' ms');
          } catch (e) {}
          try {
            const models = await (await fetch('/models')).json();
            const p = models.find(m => m.stage === 'production');
            $('model').textContent = p ? `model v${p.version} (${p.kind}) · AUC ${(p.roc_auc ?? 0).toFixed(4)} · AP ${(p.average_precision ?? 0).toFixed(4)}` : 'no production model';
          } catch (e) {}
          try {
            const r = await fetch('/pipeline/health');
            if (r.ok) { const h = await r.json();
              // healthy / degraded (system alerts active) / UNHEALTHY (a stage down, or health checks stopped).
              const rate = h.last_check && !h.last_check.stale ? ` · ${h.last_check.throughput_per_second.toFixed(1)} tx/s` : '';
              $('health').textContent = `${h.status === 'unhealthy' ? 'UNHEALTHY' : h.status}${rate} · lag ${h.lag ?? '?'}`
                + (h.alerts.length ? ' · ' + h.alerts.map(a => a.message).join(' · ') : '');
              $('health').className = h.status === 'healthy' ? 'ok' : 'bad'; }
            else $('health').textContent = 'health unknown';
          } catch (e) {}
        }
        async function start() {
          try { for (const a of (await (await fetch('/alerts/recent?limit=50')).json()).reverse()) add(a, false); } catch (e) {}
          const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/alerts/stream');
          // The token, if any, as the first message (a browser cannot set headers on a WebSocket).
          ws.onopen = () => { if (token()) ws.send(token()); $('feed').textContent = 'feed: live'; $('feed').className = 'ok'; };
          ws.onmessage = m => add(JSON.parse(m.data), true);
          ws.onclose = e => {
            $('feed').textContent = 'feed: reconnecting…'; $('feed').className = 'bad';
            if (e.code === 1008) askToken('Token for the live feed (--read-token or --token)');
            setTimeout(start, 2000);
          };
          refresh(); setInterval(refresh, 10000);
        }
        start();
        </script></body></html>
        """#
}
