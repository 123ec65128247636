// The layers of src/, bottom first (docs/ARCHITECTURE.md): a folder imports only folders of
// lower layers (and itself); folders on one layer do not import each other.
const LAYERS = [['tensor'], ['nn'], ['dist'], ['optim'], ['io', 'data'], ['models'], ['tasks'], ['eval'], ['train'], ['cli']];

const forbidden = LAYERS.flatMap((layer, i) => {
  const notBelow = LAYERS.slice(i).flat();
  return layer.map((folder) => ({
    name: `layer-${folder}`,
    comment: `src/${folder} may import only ${LAYERS.slice(0, i).flat().join(', ') || 'nothing else in src'}`,
    severity: 'error',
    from: { path: `^src/${folder}/` },
    to: { path: `^src/(${notBelow.filter((f) => f !== folder).join('|')})/` },
  }));
});

module.exports = {
  forbidden: [
    ...forbidden,
    {
      name: 'src-not-bench-or-test',
      comment: 'the library does not import its benchmarks or tests',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(bench|test)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
