/** Plain-text tables for the CLI: columns padded to their widest cell, long cells cut with "…". */
const MAX_CELL = 60;

function cell(value: unknown): string {
  const text = value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text;
}

export function formatTable(header: string[], rows: unknown[][]): string {
  const cells = [header, ...rows.map((row) => row.map(cell))];
  // A loop, not Math.max(...column): a spread of 100,000+ rows overflows the stack.
  const widths = header.map(() => 0);
  for (const row of cells) widths.forEach((width, c) => (widths[c] = Math.max(width, (row[c] ?? '').length)));
  const line = (row: string[]) => row.map((text, c) => text.padEnd(widths[c]!)).join('  ').trimEnd();
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n') + '\n';
}
