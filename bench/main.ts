// npm run bench -- <name> [args]: runs bench/<name>.js and prints its result as one JSON object.
// Speed claims are ratios against an anchor measured in the same run (see ../shared/ANCHORS.md).
const [name, ...rest] = process.argv.slice(2);
if (!name || !/^[a-z0-9_-]+$/.test(name)) {
  console.error('usage: npm run bench -- <name> [args]   (names: the files in bench/, e.g. gemm; bench/lib/ holds their shared helpers)');
  process.exit(2);
}
const mod = (await import(`./${name}.js`)) as { run(args: string[]): Promise<unknown> };
console.log(JSON.stringify(await mod.run(rest), null, 2));
