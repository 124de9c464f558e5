/**
 * The three operator questions the demo prints, as DuckDB SQL over the dataset views
 * (`sensor_readings`, `inspections`, `camera_frames`; time columns are TIMESTAMPTZ, so
 * hours and days follow the session's time zone).
 * Kept here, apart from the banner text, so a test can run them against the demo's
 * hot tier and the query CLI can offer them.
 */
export interface OperatorQuestion {
  question: string;
  sql: string;
}

export const OPERATOR_QUESTIONS: readonly OperatorQuestion[] = [
  {
    question: 'Humidity on coating line 3 in the last hour (per minute)',
    sql: `SELECT time_bucket(INTERVAL 1 MINUTE, ts) AS minute,
       round(avg(value), 1) AS humidity_pct, min(value) AS min_pct, max(value) AS max_pct
FROM sensor_readings
WHERE line = 'coating_3' AND sensor = 'humidity' AND ts >= now() - INTERVAL 1 HOUR
GROUP BY minute ORDER BY minute`,
  },
  {
    question: 'Defects per shift over the last three days (shifts 06-14, 14-22, 22-06, in the query session time zone)',
    sql: `SELECT CAST(ts - INTERVAL 6 HOUR AS DATE) AS production_day,
       CASE WHEN hour(ts) BETWEEN 6 AND 13 THEN 'early' WHEN hour(ts) BETWEEN 14 AND 21 THEN 'late' ELSE 'night' END AS shift,
       line, count(*) AS inspected, count(*) FILTER (WHERE NOT passed) AS rejected,
       count(*) FILTER (WHERE review = 'confirmed') AS confirmed_defects
FROM inspections
WHERE ts >= now() - INTERVAL 3 DAY
GROUP BY ALL ORDER BY production_day, shift, line`,
  },
  {
    question: 'Is humidity related to false positives of the edge model? (coating lines, by humidity band)',
    sql: `SELECT CAST(floor(h.value / 5) * 5 AS INTEGER) AS humidity_band_pct,
       count(*) AS inspected,
       count(*) FILTER (WHERE i.review = 'false_positive') AS false_positives,
       round(100.0 * count(*) FILTER (WHERE i.review = 'false_positive') / count(*), 2) AS false_positive_pct
FROM inspections i
ASOF JOIN (SELECT line, ts, value FROM sensor_readings WHERE sensor = 'humidity') h
  ON i.line = h.line AND i.ts >= h.ts
GROUP BY humidity_band_pct ORDER BY humidity_band_pct`,
  },
];
