/** A small inline SVG line with a shaded area and an optional dashed cap line. */
export function sparkline(values: number[], opts: { color?: string; cap?: number; testid?: string } = {}): string {
  const w = 160;
  const h = 34;
  const p = 2;
  const max = Math.max(...values, opts.cap ?? 0, 1);
  const step = values.length > 1 ? (w - 2 * p) / (values.length - 1) : 0;
  const y = (v: number) => (h - p - (v / max) * (h - 2 * p)).toFixed(1);
  const pts = values.map((v, i) => `${(p + i * step).toFixed(1)},${y(v)}`);
  const area = `M${p},${h - p} L${pts.join(' L')} L${(p + (values.length - 1) * step).toFixed(1)},${h - p} Z`;
  const color = opts.color ?? '#3156d3';
  const cap = opts.cap ? `<line x1="0" x2="${w}" y1="${y(opts.cap)}" y2="${y(opts.cap)}" stroke="#d64545" stroke-dasharray="3 3" stroke-width="1"/>` : '';
  const testid = opts.testid ? ` data-testid="${opts.testid}"` : '';
  return (
    `<svg class="spark" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" aria-hidden="true"${testid}>` +
    `<path d="${area}" fill="${color}" fill-opacity=".10"/>${cap}` +
    `<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="1.8" stroke-linejoin="round" stroke-linecap="round"/></svg>`
  );
}
