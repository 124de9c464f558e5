/**
 * The event-time range a query reads, from DuckDB's parsed tree (`json_serialize_sql`):
 * what `include_warm: "auto"` fetches back from warm before the query runs.
 *
 * Invariants (sound, or nothing):
 * - Every place a dataset is read (a SELECT's FROM, joins included; CTEs and subqueries
 *   are SELECTs of their own) must be bounded below by that SELECT's WHERE: a top-level
 *   AND-conjunct comparing the dataset's time column (unqualified, or qualified by the
 *   table's alias or name) with a literal (`'2026-11-01'`, `TIMESTAMPTZ '…'`,
 *   `DATE '…'`); `BETWEEN` and `=` count. Conjuncts under OR/NOT, expressions such as
 *   `now() - INTERVAL 3 DAY`, and bounds on derived columns are not read. A place with
 *   no lower bound makes the whole answer null (the caller asks for an explicit range):
 *   never a range narrower than what the query reads. No upper bound: up to now.
 * - The range is the hull over all places; literals are read by DuckDB itself
 *   (`evaluate`), in its time zone, as the query will read them.
 */

/** A literal a time column is compared with: its text and the type it is cast to (null: none). */
export interface TimeLiteral {
  value: string;
  castType: string | null;
}

export interface TimeRangeOf {
  fromUs: number;
  toUs: number;
  datasets: string[];
}

type Node = Record<string, unknown>;

interface Bound {
  literal: TimeLiteral;
  side: 'lower' | 'upper';
  inclusive: boolean;
}

interface Place {
  dataset: string;
  names: Set<string>;
  timeColumn: string;
  bounds: Bound[];
}

const FLIP: Record<string, string> = {
  COMPARE_GREATERTHAN: 'COMPARE_LESSTHAN',
  COMPARE_GREATERTHANOREQUALTO: 'COMPARE_LESSTHANOREQUALTO',
  COMPARE_LESSTHAN: 'COMPARE_GREATERTHAN',
  COMPARE_LESSTHANOREQUALTO: 'COMPARE_GREATERTHANOREQUALTO',
  COMPARE_EQUAL: 'COMPARE_EQUAL',
};

const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `tree`: the parsed JSON of `json_serialize_sql`; `timeColumns`: dataset → its time
 * column; `evaluate`: a literal → µs since the epoch (null: not a time); `nowUs`: the
 * end of a range with no upper bound. Null when some read of a dataset is not bounded below.
 */
export async function timeRangeOf(
  tree: unknown,
  timeColumns: Map<string, string>,
  evaluate: (literal: TimeLiteral) => Promise<number | null>,
  nowUs: number,
): Promise<TimeRangeOf | null> {
  if (!isNode(tree) || tree.error !== false) return null;
  const places: Place[] = [];
  const ctes = new Set<string>();
  visit(tree, (node) => {
    if (node.type !== 'SELECT_NODE') return;
    const cteMap = isNode(node.cte_map) && Array.isArray(node.cte_map.map) ? node.cte_map.map : [];
    for (const entry of cteMap) if (isNode(entry) && typeof entry.key === 'string') ctes.add(entry.key.toLowerCase());
    const here = tablesOf(node.from_table, timeColumns);
    if (here.length === 0) return;
    const conjuncts = andConjuncts(node.where_clause);
    for (const place of here) place.bounds = conjuncts.flatMap((c) => boundsOf(c, place));
    places.push(...here);
  });
  // A CTE named like a dataset shadows it: that name reads the CTE, not the dataset.
  const reads = places.filter((p) => !ctes.has(p.dataset.toLowerCase()));
  if (reads.length === 0) return null;
  let fromUs = Number.POSITIVE_INFINITY;
  let toUs = Number.NEGATIVE_INFINITY;
  for (const place of reads) {
    let lower: number | null = null;
    let upper: number | null = null;
    for (const bound of place.bounds) {
      const us = await evaluate(bound.literal);
      if (us === null) continue;
      if (bound.side === 'lower') lower = lower === null ? us : Math.max(lower, us);
      else {
        const end = bound.inclusive ? us + 1 : us;
        upper = upper === null ? end : Math.min(upper, end);
      }
    }
    if (lower === null) return null;
    fromUs = Math.min(fromUs, lower);
    toUs = Math.max(toUs, upper ?? nowUs);
  }
  return { fromUs, toUs: Math.max(fromUs, toUs), datasets: [...new Set(reads.map((p) => p.dataset))] };
}

function visit(value: unknown, onNode: (node: Node) => void): void {
  if (Array.isArray(value)) {
    for (const v of value) visit(v, onNode);
  } else if (isNode(value)) {
    onNode(value);
    for (const v of Object.values(value)) visit(v, onNode);
  }
}

/** Datasets read directly by a FROM clause (base tables and joins, not subqueries). */
function tablesOf(from: unknown, timeColumns: Map<string, string>): Place[] {
  if (!isNode(from)) return [];
  if (from.type === 'JOIN') return [...tablesOf(from.left, timeColumns), ...tablesOf(from.right, timeColumns)];
  if (from.type !== 'BASE_TABLE' || typeof from.table_name !== 'string') return [];
  if (from.schema_name || from.catalog_name) return [];
  const dataset = [...timeColumns.keys()].find((d) => d.toLowerCase() === (from.table_name as string).toLowerCase());
  if (!dataset) return [];
  const names = new Set([dataset.toLowerCase()]);
  if (typeof from.alias === 'string' && from.alias) names.add(from.alias.toLowerCase());
  return [{ dataset, names, timeColumn: timeColumns.get(dataset)!, bounds: [] }];
}

function andConjuncts(where: unknown): Node[] {
  if (!isNode(where)) return [];
  if (where.type === 'CONJUNCTION_AND' && Array.isArray(where.children)) return where.children.flatMap(andConjuncts);
  return [where];
}

function isTimeColumn(expr: unknown, place: Place): boolean {
  if (!isNode(expr) || expr.type !== 'COLUMN_REF' || !Array.isArray(expr.column_names)) return false;
  const names = (expr.column_names as unknown[]).map((n) => String(n).toLowerCase());
  if (names[names.length - 1] !== place.timeColumn.toLowerCase()) return false;
  return names.length === 1 || (names.length === 2 && place.names.has(names[0]!));
}

function literalOf(expr: unknown): TimeLiteral | null {
  if (!isNode(expr)) return null;
  if (expr.type === 'VALUE_CONSTANT' && isNode(expr.value) && expr.value.is_null === false) {
    const v = expr.value.value;
    return typeof v === 'string' ? { value: v, castType: null } : null;
  }
  if (expr.type === 'OPERATOR_CAST' && isNode(expr.cast_type) && typeof expr.cast_type.id === 'string') {
    const inner = literalOf(expr.child);
    return inner && inner.castType === null ? { value: inner.value, castType: expr.cast_type.id } : null;
  }
  return null;
}

function boundsOf(conjunct: Node, place: Place): Bound[] {
  if (conjunct.type === 'COMPARE_BETWEEN' && isTimeColumn(conjunct.input, place)) {
    const lower = literalOf(conjunct.lower);
    const upper = literalOf(conjunct.upper);
    return [...(lower ? [{ literal: lower, side: 'lower' as const, inclusive: true }] : []), ...(upper ? [{ literal: upper, side: 'upper' as const, inclusive: true }] : [])];
  }
  const type = typeof conjunct.type === 'string' ? conjunct.type : '';
  if (!(type in FLIP)) return [];
  let op = type;
  let literal: TimeLiteral | null = null;
  if (isTimeColumn(conjunct.left, place)) literal = literalOf(conjunct.right);
  else if (isTimeColumn(conjunct.right, place)) {
    literal = literalOf(conjunct.left);
    op = FLIP[type]!;
  }
  if (!literal) return [];
  switch (op) {
    case 'COMPARE_GREATERTHAN':
    case 'COMPARE_GREATERTHANOREQUALTO':
      return [{ literal, side: 'lower', inclusive: true }];
    case 'COMPARE_LESSTHAN':
      return [{ literal, side: 'upper', inclusive: false }];
    case 'COMPARE_LESSTHANOREQUALTO':
      return [{ literal, side: 'upper', inclusive: true }];
    default:
      return [
        { literal, side: 'lower', inclusive: true },
        { literal, side: 'upper', inclusive: true },
      ];
  }
}
