// How a first dimension of `rows` is split over `ranks` (reduceScatter's shares): as evenly as it
// goes, the first (rows mod ranks) ranks taking one row more, as numpy's array_split does.
export function shareRows(rows: number, ranks: number): number[] {
  const base = Math.floor(rows / ranks);
  const extra = rows % ranks;
  return Array.from({ length: ranks }, (_, r) => base + (r < extra ? 1 : 0));
}
