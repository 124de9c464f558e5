/** Queries over the metrics dataset (hot/rollup-fixture.ts) shared by the rollup view tests. */
/** The rollups computed straight from the raw rows, in the view's column order. */
export const DIRECT = `
  SELECT to_timestamp((epoch_us(time) // 60000000) * 60) AS minute, line, sensor,
    ${['value', 'hits', 'total']
      .map(
        (c) => `count(${c}) AS ${c}_count, min(${c}) AS ${c}_min, max(${c}) AS ${c}_max,
          ${c === 'value' ? `sum(${c})` : `CAST(sum(${c}) AS BIGINT)`} AS ${c}_sum,
          arg_max(${c}, time) FILTER (WHERE ${c} IS NOT NULL) AS ${c}_last,
          max(time) FILTER (WHERE ${c} IS NOT NULL) AS ${c}_last_ts`,
      )
      .join(', ')}
  FROM metrics GROUP BY ALL ORDER BY minute, line, sensor NULLS FIRST`;
/** The `metrics_1m` view in the order of DIRECT. */
export const ROLLUP = 'SELECT * FROM metrics_1m ORDER BY minute, line, sensor NULLS FIRST';
