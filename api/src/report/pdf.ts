import PDFDocument from 'pdfkit';
import type { UsageReport } from '../routines/report.js';
import { bytes, day, duration, int, localTime, pct, usd } from './format.js';

type Doc = InstanceType<typeof PDFDocument>;
type Align = 'left' | 'right';
interface Column { title: string; width: number; align?: Align }

const M = 50; // page margin (pt)
const INK = '#1d2433';
const MUTED = '#6b7385';
const ACCENT = '#3156d3';
const RULE = '#d5d9e2';

/**
 * The standard PDF fonts encode WinAnsi only: any other character (CJK, emoji, …) would print as unrelated
 * glyphs, so it prints as "?" instead.
 */
export function winAnsi(s: string): string {
  return s.replace(/[^\x20-\x7e\xa0-\xff\u2013\u2014\u2018\u2019\u201c\u201d\u2022\u2026\u20ac\u2122]/gu, '?');
}

/** Rows under a bold header, wrapping long cells and starting a new page (with the header again) when full. */
function table(doc: Doc, cols: Column[], rows: string[][], empty: string): void {
  const x0 = M;
  const header = () => {
    doc.font('Helvetica-Bold').fontSize(9).fillColor(MUTED);
    let x = x0;
    const y = doc.y;
    for (const c of cols) {
      doc.text(c.title, x + 2, y, { width: c.width - 4, align: c.align ?? 'left', lineBreak: false });
      x += c.width;
    }
    doc.y = y + 14;
    doc.moveTo(x0, doc.y - 2).lineTo(x0 + cols.reduce((a, c) => a + c.width, 0), doc.y - 2).lineWidth(0.7).strokeColor(RULE).stroke();
  };
  header();
  if (rows.length === 0) {
    doc.font('Helvetica-Oblique').fontSize(9).fillColor(MUTED).text(empty, x0 + 2, doc.y + 2);
    doc.moveDown(0.5);
    return;
  }
  doc.font('Helvetica').fontSize(9).fillColor(INK);
  for (let r of rows) {
    r = r.map(winAnsi);
    const h = Math.max(...r.map((cell, i) => doc.heightOfString(cell, { width: cols[i]!.width - 4 }))) + 5;
    if (doc.y + h > doc.page.height - M - 20) {
      doc.addPage();
      header();
      doc.font('Helvetica').fontSize(9).fillColor(INK);
    }
    const y = doc.y + 2;
    let x = x0;
    r.forEach((cell, i) => {
      doc.text(cell, x + 2, y, { width: cols[i]!.width - 4, align: cols[i]!.align ?? 'left' });
      x += cols[i]!.width;
    });
    doc.y = y + h - 2;
  }
  doc.moveDown(0.6);
}

function heading(doc: Doc, text: string): void {
  if (doc.y > doc.page.height - M - 90) doc.addPage();
  doc.moveDown(0.4).font('Helvetica-Bold').fontSize(12).fillColor(INK).text(text, M, doc.y);
  doc.moveDown(0.3);
}

/** Label/value pairs in two columns of two. */
function facts(doc: Doc, pairs: [string, string][]): void {
  const colW = (doc.page.width - 2 * M) / 2;
  for (let i = 0; i < pairs.length; i += 2) {
    const y = doc.y;
    let bottom = y;
    for (let j = 0; j < 2 && i + j < pairs.length; j++) {
      const [label, value] = pairs[i + j]!;
      const x = M + j * colW;
      doc.font('Helvetica').fontSize(9).fillColor(MUTED).text(label, x, y, { width: 110 });
      doc.font('Helvetica-Bold').fontSize(9).fillColor(INK).text(value, x + 112, y, { width: colW - 118 });
      bottom = Math.max(bottom, doc.y);
    }
    doc.y = bottom + 3;
  }
}

/**
 * The usage and cost report as PDF bytes. Standard PDF fonts only (nothing embedded, nothing fetched);
 * `generatedAt` is also the document's creation date, so the same data and instant give the same report.
 */
export function renderUsagePdf(r: UsageReport, generatedAt: Date): Promise<Buffer> {
  const doc = new PDFDocument({
    size: 'A4', margin: M, bufferPages: true,
    info: { Title: `KACHING usage and cost report: ${r.deployment.name}, ${r.period.from} to ${r.period.last_day}`, Author: 'KACHING', Creator: 'KACHING', CreationDate: generatedAt, ModDate: generatedAt },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (b: Buffer) => chunks.push(b));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  const W = doc.page.width - 2 * M;
  const total = r.cost.cost_micro_usd;
  const share = (micro: number) => pct(micro, total);
  const avg = (a: number | null) => (a == null ? '–' : usd(a));

  doc.font('Helvetica-Bold').fontSize(9).fillColor(ACCENT).text('KACHING', M, M);
  doc.font('Helvetica-Bold').fontSize(20).fillColor(INK).text('Usage and cost report');
  doc.font('Helvetica').fontSize(11).fillColor(INK).text(winAnsi(`${r.deployment.name}${r.deployment.org_name ? ` · ${r.deployment.org_name}` : ''}`));
  doc.fontSize(9).fillColor(MUTED).text(`Deployment ${r.deployment.deployment_id}`);
  doc.text(`Period ${day(r.period.from)} – ${day(r.period.last_day)} (${r.period.days} local ${r.period.days === 1 ? 'day' : 'days'}, ${r.period.timezone})`);
  doc.text(`Generated ${generatedAt.toISOString().replace('T', ' ').slice(0, 16)} UTC`);
  doc.moveDown(0.8);

  // the headline: total cost
  const boxY = doc.y;
  doc.roundedRect(M, boxY, W, 58, 6).fillColor('#f3f5fa').fill();
  doc.font('Helvetica').fontSize(9).fillColor(MUTED).text('Total LLM cost', M + 14, boxY + 10);
  doc.font('Helvetica-Bold').fontSize(22).fillColor(INK).text(usd(total), M + 14, boxY + 24, { lineBreak: false });
  const side = [
    `${int(r.cost.requests)} priced requests, ${avg(r.cost.average_micro_usd_per_request)} per request`,
    r.cost.unpriced_requests ? `${int(r.cost.unpriced_requests)} requests without a price yet (not in the total)` : 'every request priced',
  ];
  doc.font('Helvetica').fontSize(9).fillColor(INK).text(side[0]!, M + W / 2, boxY + 16, { width: W / 2 - 14 });
  doc.fillColor(r.cost.unpriced_requests ? '#b3261e' : MUTED).text(side[1]!, M + W / 2, doc.y + 2, { width: W / 2 - 14 });
  doc.y = boxY + 70;

  const t = r.totals;
  heading(doc, 'Utilisation');
  facts(doc, [
    ['Jobs', `${int(t.jobs)} (${int(t.jobs_succeeded)} succeeded, ${int(t.jobs_failed)} failed)`],
    ['Peak seats / nodes', `${int(t.peak_seats)} / ${int(t.peak_nodes)}`],
    ['CPU time', duration(Number(t.cpu_seconds))],
    ['GPU time', duration(Number(t.gpu_seconds))],
    ['Input tokens', int(t.tokens_in)],
    ['Output tokens', int(t.tokens_out)],
    ['Cached input tokens', int(t.tokens_cache_read)],
    ['Reasoning tokens', int(t.tokens_reasoning)],
    ['Context read', bytes(t.context_bytes_read)],
    ['Context written', bytes(t.context_bytes_written)],
    ['Network in / out', `${bytes(Number(t.net_in_mb) * 1e6)} / ${bytes(Number(t.net_out_mb) * 1e6)}`],
    ['Peak concurrency', `${int(t.peak_concurrency)} ${t.peak_concurrency === 1 ? 'job' : 'jobs'}`],
  ]);

  heading(doc, 'Cost by model');
  table(
    doc,
    [{ title: 'Model', width: 150 }, { title: 'Provider', width: 85 }, { title: 'Requests', width: 65, align: 'right' }, { title: 'Cost', width: 80, align: 'right' }, { title: 'Per request', width: 70, align: 'right' }, { title: 'Share', width: W - 450, align: 'right' }],
    r.by_model.map((g) => [g.key ?? '(none)', g.provider ?? '', int(g.requests), usd(g.cost_micro_usd), avg(g.average_micro_usd_per_request), share(g.cost_micro_usd)]),
    'No LLM requests in this period.',
  );

  heading(doc, 'Cost by agent type');
  table(
    doc,
    [{ title: 'Agent type', width: 235 }, { title: 'Requests', width: 65, align: 'right' }, { title: 'Cost', width: 80, align: 'right' }, { title: 'Per request', width: 70, align: 'right' }, { title: 'Share', width: W - 450, align: 'right' }],
    r.by_agent_type.map((g) => [g.key ?? '(none)', int(g.requests), usd(g.cost_micro_usd), avg(g.average_micro_usd_per_request), share(g.cost_micro_usd)]),
    'No LLM requests in this period.',
  );

  heading(doc, 'Top tags');
  table(
    doc,
    [{ title: 'Tag', width: 120 }, { title: 'Value', width: 180 }, { title: 'Requests', width: 70, align: 'right' }, { title: 'Cost', width: 80, align: 'right' }, { title: 'Share', width: W - 450, align: 'right' }],
    r.top_tags.map((g) => [g.tag, g.value, int(g.requests), usd(g.cost_micro_usd), share(g.cost_micro_usd)]),
    'No tagged requests in this period.',
  );

  heading(doc, `Alerts in the period (${int(r.alerts.total)})`);
  table(
    doc,
    [{ title: 'Local time', width: 105 }, { title: 'Severity', width: 50 }, { title: 'Code', width: 110 }, { title: 'Message', width: W - 265 }],
    r.alerts.items.map((a) => [localTime(a.created_at, r.period.timezone), a.severity, a.code, a.message]),
    'No alerts in this period.',
  );
  if (r.alerts.total > r.alerts.items.length) {
    doc.font('Helvetica-Oblique').fontSize(8).fillColor(MUTED).text(`… and ${int(r.alerts.total - r.alerts.items.length)} more (GET /v1/alerts lists them all).`, M);
  }

  // footer on every page; written last, so the page count is known
  const range = doc.bufferedPageRange();
  for (let i = range.start; i < range.start + range.count; i++) {
    doc.switchToPage(i);
    const bottom = doc.page.margins.bottom;
    doc.page.margins.bottom = 0; // writing inside the margin must not open a new page
    doc.font('Helvetica').fontSize(7.5).fillColor(MUTED).text(
      `Costs in USD, each request priced by the price book version in force when it ran. Page ${i + 1} of ${range.count}`,
      M, doc.page.height - M + 16, { width: W, align: 'center', lineBreak: false },
    );
    doc.page.margins.bottom = bottom;
  }
  doc.end();
  return done;
}
