// Builds the console into the Python package: one ES module that the Airflow UI imports for each of the
// plugin's react_apps. React, ReactDOM and the JSX runtime are not bundled: the module uses the copies the
// Airflow UI publishes on globalThis, which every Airflow 3.1+ UI shares with plugins (its Chakra and
// Emotion copies are not used: sharing them broke plugins on Airflow 3.1.7, apache/airflow#68217).
//
//   node build.mjs [--outfile PATH]   (default: the file the package ships)
import { build } from "esbuild";

const SHARED = { react: "React", "react-dom": "ReactDOM", "react/jsx-runtime": "ReactJSXRuntime" };
const SHIPPED = "../airflow_integrity/plugin/static/console.js";

const airflowGlobals = {
  name: "airflow-globals",
  setup(builder) {
    builder.onResolve({ filter: /^react(-dom)?(\/jsx-runtime)?$/ }, (args) => ({
      path: args.path,
      namespace: "airflow-global",
    }));
    builder.onLoad({ filter: /.*/, namespace: "airflow-global" }, (args) => {
      const name = SHARED[args.path];
      if (name === undefined) throw new Error(`${args.path} is not shared by the Airflow UI`);
      return { contents: `module.exports = globalThis.${name};`, loader: "js" };
    });
  },
};

const at = process.argv.indexOf("--outfile");
await build({
  entryPoints: ["src/main.tsx"],
  outfile: at > 0 ? process.argv[at + 1] : SHIPPED,
  bundle: true,
  format: "esm",
  target: "es2020",
  jsx: "automatic",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  banner: { js: "/* airflow-integrity console. Built from ui/ by `npm run build`: do not edit. */" },
  plugins: [airflowGlobals],
  logLevel: "warning",
});
