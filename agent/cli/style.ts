/**
 * Colour for human output: only on a terminal, and never when NO_COLOR is set to a
 * non-empty value (https://no-color.org). Plain text otherwise, so pipes and logs get
 * no escape codes.
 */
export interface Style {
  ok(text: string): string;
  warn(text: string): string;
  fail(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

const paint = (code: number, reset: number) => (text: string) => `\u001b[${code}m${text}\u001b[${reset}m`;

export const COLOUR: Style = { ok: paint(32, 39), warn: paint(33, 39), fail: paint(31, 39), dim: paint(2, 22), bold: paint(1, 22) };
export const PLAIN: Style = { ok: (t) => t, warn: (t) => t, fail: (t) => t, dim: (t) => t, bold: (t) => t };

export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Style {
  return stream.isTTY === true && !env.NO_COLOR ? COLOUR : PLAIN;
}
