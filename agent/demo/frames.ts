/**
 * Renders one inspection camera frame as a PNG: a lit metal/coated surface (a vertical
 * gradient with brushed rows and a vignette) and, for each defect, a mark where the
 * edge model saw it: scratch = thin dark diagonal, bubble = bright ring, streak =
 * light vertical band, crack = dark jagged line, other labels = a dark blotch. False
 * positives are drawn faint. Deterministic given the PRNG.
 */
import { encodePng } from './png.ts';
import type { Prng } from './prng.ts';

export const FRAME_WIDTH = 320;
export const FRAME_HEIGHT = 240;

export interface FrameDefect {
  label: string;
  /** 0..1: how visible the mark is. */
  strength: number;
}

type Tint = readonly [number, number, number];
const TINTS: Record<string, Tint> = { coating: [0.82, 0.9, 1.0], pressing: [1.0, 0.93, 0.85] };

export function renderFrame(kind: 'coating' | 'pressing', defects: readonly FrameDefect[], rng: Prng, width = FRAME_WIDTH, height = FRAME_HEIGHT): Buffer {
  const tint = TINTS[kind] ?? [1, 1, 1];
  const lum = new Float32Array(width * height);
  const brushed = Array.from({ length: height }, () => rng.gaussian() * 4);
  const light = rng.between(150, 185);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dx = (x - width / 2) / width;
      const dy = (y - height / 2) / height;
      const vignette = 1 - 0.6 * (dx * dx + dy * dy);
      lum[y * width + x] = (light - 40 * (y / height)) * vignette + brushed[y]!;
    }
  }
  for (const defect of defects) drawDefect(lum, width, height, defect, rng);
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < lum.length; i++) {
    const v = lum[i]!;
    rgb[i * 3] = clamp(v * tint[0]);
    rgb[i * 3 + 1] = clamp(v * tint[1]);
    rgb[i * 3 + 2] = clamp(v * tint[2]);
  }
  return encodePng(width, height, rgb);
}

function drawDefect(lum: Float32Array, width: number, height: number, defect: FrameDefect, rng: Prng): void {
  const cx = rng.between(0.2, 0.8) * width;
  const cy = rng.between(0.2, 0.8) * height;
  const s = defect.strength;
  const add = (x: number, y: number, delta: number): void => {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi >= 0 && xi < width && yi >= 0 && yi < height) lum[yi * width + xi]! += delta;
  };
  switch (defect.label) {
    case 'scratch':
    case 'crack': {
      const length = rng.between(40, 110);
      const angle = rng.between(-0.6, 0.6);
      for (let t = 0; t < length; t++) {
        const jitter = defect.label === 'crack' ? rng.gaussian() * 1.5 : 0;
        const x = cx + t * Math.cos(angle);
        const y = cy + t * Math.sin(angle) + jitter;
        add(x, y, -90 * s);
        add(x, y + 1, -50 * s);
      }
      break;
    }
    case 'bubble': {
      const r = rng.between(6, 16);
      for (let y = -r - 2; y <= r + 2; y++) {
        for (let x = -r - 2; x <= r + 2; x++) {
          const d = Math.hypot(x, y);
          if (Math.abs(d - r) < 1.5) add(cx + x, cy + y, 80 * s);
          else if (d < r - 1.5) add(cx + x, cy + y, -20 * s);
        }
      }
      break;
    }
    case 'streak': {
      const w = rng.between(3, 9);
      for (let y = 0; y < height; y++) for (let x = -w; x <= w; x++) add(cx + x + y * 0.05, y, 35 * s * (1 - Math.abs(x) / (w + 1)));
      break;
    }
    default: {
      const rx = rng.between(5, 18);
      const ry = rng.between(4, 12);
      for (let y = -ry; y <= ry; y++) {
        for (let x = -rx; x <= rx; x++) {
          const d = (x * x) / (rx * rx) + (y * y) / (ry * ry);
          if (d <= 1) add(cx + x, cy + y, -110 * s * (1 - d));
        }
      }
    }
  }
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}
