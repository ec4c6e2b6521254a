// Turns a bench result (the JSON written by run.mjs) into a terminal table, a Markdown summary and an SVG chart (vega-lite -> vega -> view.toSVG()).

export const TRUST_NOTE =
  'The load generator runs on the same machine and competes with the servers for CPU. With few cores, requests/s mostly measures ' +
  'how the cores were shared, not what each mode can do: trust CPU per request and fairness, read requests/s and latency with care.';

const WORKLOAD_LABEL = {
  keepalive: 'keep-alive',
  close: 'new connection per request',
};

const fmt = {
  int: (v) => (v === null || v === undefined ? '-' : Math.round(v).toLocaleString('en-US')),
  ms: (v) => (v === null || v === undefined ? '-' : v < 10 ? v.toFixed(2) : v.toFixed(1)),
  us: (v) => (v === null || v === undefined ? '-' : v.toFixed(1)),
  jain: (v) => (v === null || v === undefined ? '-' : v.toFixed(3)),
  ratio: (v) => (v === null || v === undefined ? '-' : v === Infinity ? 'inf' : v.toFixed(2)),
  rpc: (v) => (v === null || v === undefined ? '-' : v.toFixed(2)),
};

/** One row per configuration x workload, in a fixed order, n/a and failed rows included. */
export function rows(result) {
  const out = [];
  for (const workload of result.workloads) {
    for (const cfg of result.configurations) {
      const s = result.summary[cfg.id]?.[workload];
      out.push({ cfg, workload, s, status: !cfg.available ? 'n/a' : s && s.rounds > 0 ? 'ok' : 'failed' });
    }
  }
  return out;
}

const COLUMNS = [
  ['configuration', (r) => r.cfg.label],
  ['workers', (r) => String(r.cfg.workers)],
  ['req/s', (r) => fmt.int(r.s?.requestsPerSecond)],
  ['p50 ms', (r) => fmt.ms(r.s?.latencyP50Ms)],
  ['p99 ms', (r) => fmt.ms(r.s?.latencyP99Ms)],
  ['errors', (r) => fmt.int(r.s?.errors)],
  ['CPU us/req', (r) => fmt.us(r.s?.cpuMicrosPerRequest)],
  ['primary us/req', (r) => fmt.us(r.s?.primaryCpuMicrosPerRequest)],
  ['Jain', (r) => fmt.jain(r.s?.jainIndex)],
  ['max/min', (r) => fmt.ratio(r.s?.maxMinRatio)],
  ['req/conn', (r) => fmt.rpc(r.s?.requestsPerConnection)],
  ['per worker (busiest first)', (r) => (r.s?.perWorkerRequests ?? []).map(fmt.int).join(' / ')],
];

function cells(r) {
  if (r.status === 'ok') return COLUMNS.map(([, f]) => f(r));
  const why = r.status === 'n/a' ? `n/a: ${r.cfg.reason}` : `failed: ${r.cfg.error ?? 'see JSON'}`;
  return [r.cfg.label, String(r.cfg.workers), why, ...COLUMNS.slice(3).map(() => '')];
}

// ---- stall scenario ----------------------------------------------------------------------------

export const STALL_TITLE = 'One worker blocked for 2 s';

const pct = (v) => (v === null || v === undefined ? '-' : `${(v * 100).toFixed(0)}%`);

const STALL_COLUMNS = [
  ['configuration', (cfg) => cfg.label],
  ['workers', (cfg) => String(cfg.workers)],
  ['connections', (_c, s) => fmt.int(s.sent)],
  ['over 500 ms', (_c, s) => fmt.int(s.over500ms)],
  ['p50 ms', (_c, s) => fmt.ms(s.latencyP50Ms)],
  ['p99 ms', (_c, s) => fmt.ms(s.latencyP99Ms)],
  ['max ms', (_c, s) => fmt.ms(s.latencyMaxMs)],
  ['failures', (_c, s) => fmt.int(s.failures)],
  ['blocked worker share', (_c, s) => pct(s.blockedWorkerShare)],
  ['CPU us/conn', (_c, s) => fmt.us(s.cpuMicrosPerConnection)],
  ['primary us/conn', (_c, s) => fmt.us(s.primaryCpuMicrosPerConnection)],
  ['over 500 ms by round', (_c, s) => (s.over500msByRound ?? []).map(fmt.int).join(' / ')],
];

/** Rows of the stall table: [cells] per configuration, failed ones included. */
export function stallRows(stall) {
  return stall.configurations.map((cfg) => {
    const s = stall.summary[cfg.id];
    if (!s) return [cfg.label, String(cfg.workers), `failed: ${cfg.error ?? 'see JSON'}`, ...STALL_COLUMNS.slice(3).map(() => '')];
    return STALL_COLUMNS.map(([, f]) => f(cfg, s));
  });
}

/** One sentence describing the stall settings. */
export function stallSettingsText(stall) {
  const st = stall.settings;
  return (
    `${st.workers} workers; an open-loop client in its own process opens ${st.rate} new connections/s for ${st.durationSec} s ` +
    `(one \`GET /\` with \`Connection: close\` each, at most ${st.maxInFlight} in flight, ${st.timeoutMs / 1000} s timeout); ` +
    `${st.blockAtSec} s in, one worker (picked by pid) busy-waits for ${st.blockSec} s. Medians of ${st.rounds} round(s), configurations in alternating order.`
  );
}

const STALL_EXPLAIN =
  'Connections: opened by the client. Over 500 ms: connections whose connect + response took more than 500 ms (or failed after that long). ' +
  'Latency percentiles are over the successful connections, connect to end of response. Failures: refused, reset, timed out or not 200. ' +
  'Blocked worker share: the connections the blocked worker served, of all. CPU us/conn: CPU time of every server process, the primary included, ' +
  'without the busy-wait itself, per connection served, at this fixed rate (so fixed costs such as heartbeats count).';

function stallText(stall) {
  const rows = stallRows(stall);
  const head = STALL_COLUMNS.map(([h]) => h);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.filter((r) => i < 2 || r[3] !== '').map((r) => r[i].length)));
  const line = (cs) =>
    cs
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : i === cs.length - 1 || (cs[3] === '' && i === 2) ? c : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [
    `\n${STALL_TITLE.replace('2 s', `${stall.settings.blockSec} s`)}`,
    wrap(stallSettingsText(stall), 100),
    line(head),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
  ];
}

function stallMarkdown(stall, stallSvgName) {
  const head = STALL_COLUMNS.map(([h]) => h);
  const out = [
    `## ${STALL_TITLE.replace('2 s', `${stall.settings.blockSec} s`)}`,
    '',
    stallSettingsText(stall),
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...stallRows(stall).map((r) => `| ${r.join(' | ')} |`),
    '',
    STALL_EXPLAIN,
    '',
  ];
  for (const c of stall.configurations) out.push(`- ${c.label}: ${c.how}.`);
  out.push('');
  if (stallSvgName) out.push(`![connections over 500 ms and latency per configuration, one worker blocked](${stallSvgName})`, '');
  return out.join('\n');
}

/** Vega-Lite spec of the stall chart: connections over 500 ms, and p50/p99/max latency, per configuration (log scales). */
export function stallChartSpec(result) {
  const stall = result.stall;
  const modes = stall.configurations.map((c) => c.label);
  const slow = [];
  const lat = [];
  for (const cfg of stall.configurations) {
    const s = stall.summary[cfg.id];
    if (!s) continue;
    slow.push({ mode: cfg.label, over500ms: s.over500ms, percent: s.over500msPercent });
    for (const [stat, v] of [
      ['p50', s.latencyP50Ms],
      ['p99', s.latencyP99Ms],
      ['max', s.latencyMaxMs],
    ]) {
      // A log scale cannot show 0; latencies below 0.1 ms do not occur on a real run.
      if (v !== null) lat.push({ mode: cfg.label, stat, ms: Math.max(0.1, v) });
    }
  }
  const xMode = { field: 'mode', type: 'nominal', sort: modes, title: null, axis: { labelAngle: -30, labelLimit: 260 } };
  const st = stall.settings;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `One of ${st.workers} workers blocked for ${st.blockSec} s, ${st.rate} new connections/s`,
      subtitle: [
        `${result.startedAt}, ${result.machine.cores} core(s), Linux ${result.machine.kernel}, Node ${result.machine.serverNode}, medians of ${st.rounds} round(s) of ${st.durationSec} s.`,
        `Open-loop client in its own process; the block starts ${st.blockAtSec} s in. Both y axes are logarithmic.`,
      ],
      anchor: 'start',
    },
    background: 'white',
    padding: 12,
    hconcat: [
      {
        width: 280,
        height: 220,
        title: 'connections that took over 500 ms',
        data: { values: slow },
        layer: [
          {
            mark: { type: 'bar', tooltip: true, color: '#e45756' },
            // symlog: a log-like scale that can show 0.
            encoding: { x: xMode, y: { field: 'over500ms', type: 'quantitative', title: 'connections over 500 ms (symlog)', scale: { type: 'symlog' } } },
          },
          {
            mark: { type: 'text', dy: -6, fontSize: 11 },
            encoding: {
              x: xMode,
              y: { field: 'over500ms', type: 'quantitative', scale: { type: 'symlog' } },
              text: { field: 'over500ms', type: 'quantitative', format: ',d' },
            },
          },
        ],
      },
      {
        width: 280,
        height: 220,
        title: 'latency, connect to end of response',
        data: { values: lat },
        mark: { type: 'bar', tooltip: true },
        encoding: {
          x: xMode,
          xOffset: { field: 'stat', type: 'nominal', sort: ['p50', 'p99', 'max'] },
          y: { field: 'ms', type: 'quantitative', title: 'milliseconds (log)', stack: null, scale: { type: 'log', domainMin: 0.1 } },
          color: {
            field: 'stat',
            type: 'nominal',
            title: 'latency',
            sort: ['p50', 'p99', 'max'],
            scale: { domain: ['p50', 'p99', 'max'], range: ['#4c78a8', '#f58518', '#b279a2'] },
          },
        },
      },
    ],
    config: { font: 'Helvetica, Arial, sans-serif', legend: { orient: 'right' } },
  };
}

async function renderSvg(spec) {
  // vega and vega-lite are ESM-only: import them lazily so the table works even if they fail to load.
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The stall chart as an SVG string. */
export function toStallSvg(result) {
  return renderSvg(stallChartSpec(result));
}

// ---- throughput ----------------------------------------------------------------------------------

/** Plain-text table for the terminal. */
export function formatTable(result) {
  const lines = [];
  for (const workload of result.workloads) {
    const body = rows(result)
      .filter((r) => r.workload === workload)
      .map(cells);
    const head = COLUMNS.map(([h]) => h);
    // n/a rows put a long reason in the req/s column; let it overflow rather than widen the table.
    const widths = head.map((h, i) => Math.max(h.length, ...body.filter((b) => i < 2 || b[3] !== '').map((b) => b[i].length)));
    const line = (cs) =>
      cs
        .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : i === cs.length - 1 || (cs[3] === '' && i === 2) ? c : c.padStart(widths[i])))
        .join('  ')
        .trimEnd();
    lines.push(
      `\n${WORKLOAD_LABEL[workload]} (median of ${result.settings.rounds} round(s), ${result.settings.durationSec} s each, ${result.settings.connections} connections, ${result.loadGenerator.used})`,
    );
    lines.push(line(head));
    lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const b of body) lines.push(line(b));
  }
  if (result.stall) lines.push(...stallText(result.stall));
  lines.push('');
  if (result.workloads.length) lines.push(wrap(`Note: ${TRUST_NOTE}`, 100));
  for (const n of result.notes) lines.push(wrap(`Note: ${n}`, 100));
  return lines.join('\n');
}

function wrap(text, width) {
  const out = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = `  ${word}`;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out.join('\n');
}

function mdTable(result, workload) {
  const head = COLUMNS.map(([h]) => h);
  const out = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const r of rows(result).filter((x) => x.workload === workload)) out.push(`| ${cells(r).join(' | ')} |`);
  return out.join('\n');
}

/** Markdown summary of one run (bench/results/<date>-<host>.md). */
export function toMarkdown(result, { svgName, stallSvgName } = {}) {
  const m = result.machine;
  const s = result.settings;
  const parts = [
    `# reuseport benchmark: ${result.startedAt}`,
    '',
    `Machine: ${m.hostname}, ${m.cores} core(s) (${m.cpuModel}), Linux ${m.kernel}, ${m.totalMemGiB} GiB; bench on Node ${m.benchNode}, servers on Node ${m.serverNode}${m.serverExecPath !== m.benchExecPath ? ` (${m.serverExecPath})` : ''}.`,
    '',
    `During the run: load average ${m.loadAverageAtStart?.[0]?.toFixed(2) ?? '?'} at start, ${m.loadAverageAtEnd?.[0]?.toFixed(2) ?? '?'} at end; CPU idle ${m.cpuIdlePercentDuringRun ?? '?'}%, steal ${m.cpuStealPercentDuringRun ?? '?'}% (from /proc/stat).`,
    '',
    result.workloads.length
      ? `Settings: ${s.workers} worker(s) per cluster configuration, ${s.rounds} round(s) of ${s.durationSec} s (+ ${s.warmupSec} s warm-up) per configuration and workload, ${s.connections} concurrent connections, load from ${result.loadGenerator.used}${result.loadGenerator.note ? ` (${result.loadGenerator.note})` : ''}. Configurations run in alternating order (reversed every other round). Figures are medians over rounds.`
      : 'Stall scenario only (--stall).',
    '',
    `Command: \`${result.command}\``,
    '',
    ...(result.workloads.length ? [`> ${TRUST_NOTE}`, ''] : []),
  ];
  for (const workload of result.workloads) {
    parts.push(`## ${WORKLOAD_LABEL[workload]}`, '', mdTable(result, workload), '');
  }
  if (result.workloads.length)
    parts.push(
      'Columns: CPU us/req is the CPU time (user + system) of every server process, primary included, divided by the requests the servers counted; ' +
        '"primary us/req" is the primary\'s share. Jain is Jain\'s fairness index over per-worker request counts (1 = even, 1/n = one worker did everything); ' +
        "max/min is the busiest worker's count over the idlest's. req/conn is requests per TCP connection as counted by the servers (1.00 means every request came on a new connection). " +
        'Errors are non-2xx responses + socket errors + timeouts.',
      '',
    );
  if (svgName) parts.push(`![requests/s, CPU per request and per-worker share by mode](${svgName})`, '');
  if (result.stall) parts.push(stallMarkdown(result.stall, stallSvgName));
  for (const n of result.notes) parts.push(`- ${n}`);
  if (result.notes.length) parts.push('');
  return parts.join('\n');
}

/** Vega-Lite spec of the chart; data are the medians from result.summary. */
export function chartSpec(result) {
  const bars = [];
  const shares = [];
  for (const r of rows(result)) {
    if (r.status !== 'ok') continue;
    const base = { mode: r.cfg.label, workload: WORKLOAD_LABEL[r.workload] };
    bars.push({ ...base, rps: r.s.requestsPerSecond, cpu: r.s.cpuMicrosPerRequest });
    const total = r.s.perWorkerRequests.reduce((a, b) => a + (b ?? 0), 0);
    r.s.perWorkerRequests.forEach((count, i) => {
      shares.push({ ...base, worker: `#${i + 1}`, rank: i, share: total > 0 ? count / total : 0 });
    });
  }
  const modes = result.configurations.filter((c) => c.available).map((c) => c.label);
  const xMode = { field: 'mode', type: 'nominal', sort: modes, title: null, axis: { labelAngle: -30, labelLimit: 260 } };
  const color = { field: 'workload', type: 'nominal', title: 'workload', scale: { domain: Object.values(WORKLOAD_LABEL) } };
  const barChart = (field, title, axisTitle) => ({
    width: 300,
    height: 200,
    title,
    data: { values: bars },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      x: xMode,
      xOffset: { field: 'workload', type: 'nominal', scale: { domain: Object.values(WORKLOAD_LABEL) } },
      y: { field, type: 'quantitative', title: axisTitle },
      color,
    },
  });
  const shareChart = (workload) => ({
    width: 300,
    height: 200,
    title: `share of requests per worker, ${workload}`,
    data: { values: shares },
    transform: [{ filter: { field: 'workload', equal: workload } }],
    mark: { type: 'bar', tooltip: true },
    encoding: {
      x: xMode,
      y: { field: 'share', type: 'quantitative', stack: 'zero', axis: { format: '%' }, title: 'share (busiest worker first)' },
      color: { field: 'worker', type: 'nominal', title: 'worker', scale: { scheme: 'tableau10' } },
      order: { field: 'rank', type: 'quantitative' },
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `reuseport benchmark, ${result.machine.cores} core(s), ${result.settings.workers} worker(s), ${result.loadGenerator.used}`,
      subtitle: [
        `${result.startedAt}, Linux ${result.machine.kernel}, Node ${result.machine.serverNode}, medians of ${result.settings.rounds} round(s) of ${result.settings.durationSec} s.`,
        'The load generator shares the CPUs: trust CPU per request and fairness more than requests/s.',
      ],
      anchor: 'start',
    },
    // Workload colours and worker colours are different things: one legend each.
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
    background: 'white',
    padding: 12,
    vconcat: [
      {
        hconcat: [
          barChart('rps', 'requests per second', 'requests/s'),
          barChart('cpu', 'CPU per request, all server processes', 'CPU microseconds per request'),
        ],
      },
      { hconcat: [shareChart(WORKLOAD_LABEL.keepalive), shareChart(WORKLOAD_LABEL.close)] },
    ],
    config: { font: 'Helvetica, Arial, sans-serif', legend: { orient: 'right', labelLimit: 300 } },
  };
}

/** Renders the chart to an SVG string with vega's headless view (no canvas, no browser). */
export function toSvg(result) {
  return renderSvg(chartSpec(result));
}
