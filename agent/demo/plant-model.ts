/**
 * What the simulated plant is made of, and how its signals move. Pure: no timers, no
 * I/O; given a PRNG and the time step, each signal yields its next value.
 *
 * A sensor's value = base + slow daily-ish swing (sine) + a mean-reverting random walk
 * + white noise (+ for humidity on coating lines an occasional excursion: a ramp up of
 * 8–15 %RH lasting a few minutes, the "wet afternoon"). Coating-line humidity stays in
 * 35–55 %RH outside excursions. The inspection model makes the edge model's false
 * positives (bubble/streak at low confidence) more likely as humidity rises, so
 * "is humidity related to false positives?" has an answer in the data.
 */
import type { Prng } from './prng.ts';

export interface SensorSpec {
  name: string;
  unit: string;
  /** Readings per second. */
  hz: number;
  base: number;
  /** Amplitude and period of the slow swing. */
  swing: number;
  swingPeriodSeconds: number;
  /** Standard deviation of the random walk's stationary spread, and of the white noise. */
  walk: number;
  noise: number;
  min: number;
  max: number;
  decimals: number;
  /** Humidity on coating lines: occasional excursions. */
  excursions?: boolean;
}

export interface LineSpec {
  name: string;
  kind: 'coating' | 'pressing';
  camera: string;
  /** Inspections (one product each, one camera frame each) per second. */
  inspectionHz: number;
  sensors: SensorSpec[];
}

const coatingSensors = (humidityBase: number): SensorSpec[] => [
  { name: 'temperature', unit: '°C', hz: 1, base: 82, swing: 1.5, swingPeriodSeconds: 3600, walk: 0.6, noise: 0.15, min: 60, max: 100, decimals: 2 },
  { name: 'humidity', unit: '%RH', hz: 1, base: humidityBase, swing: 5, swingPeriodSeconds: 2400, walk: 1.5, noise: 0.3, min: 25, max: 75, decimals: 1, excursions: true },
  { name: 'pressure', unit: 'bar', hz: 5, base: 2.4, swing: 0.05, swingPeriodSeconds: 600, walk: 0.03, noise: 0.01, min: 1.5, max: 3.5, decimals: 3 },
  { name: 'line_speed', unit: 'm/min', hz: 10, base: 42, swing: 0.8, swingPeriodSeconds: 900, walk: 0.4, noise: 0.05, min: 0, max: 60, decimals: 2 },
  { name: 'thickness', unit: 'µm', hz: 2, base: 25, swing: 0.4, swingPeriodSeconds: 1200, walk: 0.3, noise: 0.1, min: 18, max: 32, decimals: 2 },
];

const pressingSensors: SensorSpec[] = [
  { name: 'temperature', unit: '°C', hz: 1, base: 185, swing: 3, swingPeriodSeconds: 3600, walk: 1, noise: 0.3, min: 150, max: 220, decimals: 1 },
  { name: 'pressure', unit: 'bar', hz: 10, base: 148, swing: 2, swingPeriodSeconds: 300, walk: 1.2, noise: 0.4, min: 100, max: 200, decimals: 2 },
  { name: 'line_speed', unit: 'strokes/min', hz: 5, base: 24, swing: 0.5, swingPeriodSeconds: 900, walk: 0.3, noise: 0.05, min: 0, max: 40, decimals: 2 },
  { name: 'oil_temperature', unit: '°C', hz: 1, base: 48, swing: 2, swingPeriodSeconds: 5400, walk: 0.5, noise: 0.1, min: 30, max: 70, decimals: 2 },
];

/** The demo plant: two coating lines and a press; about 55 readings/s, 3 inspections/s, 3 frames/s. */
export const DEMO_LINES: readonly LineSpec[] = [
  { name: 'coating_2', kind: 'coating', camera: 'cam_top', inspectionHz: 1, sensors: coatingSensors(43) },
  { name: 'coating_3', kind: 'coating', camera: 'cam_top', inspectionHz: 1, sensors: coatingSensors(47) },
  { name: 'pressing_1', kind: 'pressing', camera: 'cam_exit', inspectionHz: 1, sensors: pressingSensors },
];

export const DEFECT_LABELS: Record<LineSpec['kind'], readonly string[]> = {
  coating: ['scratch', 'bubble', 'streak', 'inclusion', 'orange_peel'],
  pressing: ['crack', 'dent', 'burr', 'scratch'],
};

/** Labels the edge model wrongly gives when the air is humid (condensation on the web). */
const HUMID_FALSE_LABELS = ['bubble', 'streak'];

export class SignalState {
  private readonly spec: SensorSpec;
  private readonly rng: Prng;
  private readonly phase: number;
  private walkValue = 0;
  private excursion: { startS: number; durationS: number; height: number } | null = null;

  constructor(spec: SensorSpec, rng: Prng) {
    this.spec = spec;
    this.rng = rng;
    this.phase = rng.between(0, 2 * Math.PI);
    this.walkValue = rng.gaussian() * spec.walk;
  }

  /** The next reading at `nowS` (seconds), `dtS` after the previous one. */
  next(nowS: number, dtS: number): number {
    const { spec, rng } = this;
    // Ornstein–Uhlenbeck with a 2-minute time constant and stationary sd `walk`.
    const theta = 1 / 120;
    this.walkValue += -theta * this.walkValue * dtS + spec.walk * Math.sqrt(2 * theta * dtS) * rng.gaussian();
    let value = spec.base + spec.swing * Math.sin((2 * Math.PI * nowS) / spec.swingPeriodSeconds + this.phase) + this.walkValue;
    if (spec.excursions) value += this.excursionAt(nowS, dtS);
    value += spec.noise * rng.gaussian();
    const clamped = Math.min(spec.max, Math.max(spec.min, value));
    const scale = 10 ** spec.decimals;
    return Math.round(clamped * scale) / scale;
  }

  private excursionAt(nowS: number, dtS: number): number {
    const { rng } = this;
    if (this.excursion && nowS - this.excursion.startS > this.excursion.durationS) this.excursion = null;
    // About one every 10 minutes.
    if (!this.excursion && rng.chance(dtS / 600)) {
      this.excursion = { startS: nowS, durationS: rng.between(60, 240), height: rng.between(8, 15) };
    }
    if (!this.excursion) return 0;
    const { startS, durationS, height } = this.excursion;
    const progress = (nowS - startS) / durationS;
    return height * Math.sin(Math.PI * Math.min(1, Math.max(0, progress)));
  }
}

export interface InspectionOutcome {
  passed: boolean;
  defects: { label: string; confidence: number }[];
  /** The re-inspection station's verdict on a rejected product; null when it passed. */
  review: 'confirmed' | 'false_positive' | null;
}

/**
 * One inspection. True defects: 2 % on coating lines, 1.5 % on the press. False
 * positives: 1 % baseline, plus 0.8 % per %RH above 42 on coating lines.
 */
export function inspect(line: LineSpec, humidity: number | undefined, rng: Prng): InspectionOutcome {
  const trueRate = line.kind === 'coating' ? 0.02 : 0.015;
  if (rng.chance(trueRate)) {
    const label = rng.pick(DEFECT_LABELS[line.kind]);
    return { passed: false, defects: [{ label, confidence: round(rng.between(0.8, 0.99), 3) }], review: 'confirmed' };
  }
  const humid = line.kind === 'coating' && humidity !== undefined ? Math.max(0, humidity - 42) * 0.008 : 0;
  if (rng.chance(0.01 + humid)) {
    const label = humid > 0 && rng.chance(0.8) ? rng.pick(HUMID_FALSE_LABELS) : rng.pick(DEFECT_LABELS[line.kind]);
    return { passed: false, defects: [{ label, confidence: round(rng.between(0.5, 0.78), 3) }], review: 'false_positive' };
  }
  return { passed: true, defects: [], review: null };
}

function round(value: number, decimals: number): number {
  const scale = 10 ** decimals;
  return Math.round(value * scale) / scale;
}
