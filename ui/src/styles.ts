// The console's look, written with the Airflow UI's own theme variables (Chakra's CSS variables, which its
// theme defines for light and dark mode), so that the console follows the UI's colours, mode and fonts without
// bundling a second copy of Chakra. Each variable has a plain fallback for a UI that lacks it.

const v = (token: string, fallback: string) => `var(--chakra-colors-${token}, ${fallback})`;

const fg = v("fg", "#18181b");
const muted = v("fg-muted", "#52525b");
const bg = v("bg", "#ffffff");
const subtle = v("bg-subtle", "#fafafa");
const panel = v("bg-muted", "#f4f4f5");
const border = v("border", "#e4e4e7");
const strong = v("border-emphasized", "#d4d4d8");
const brand = v("brand-solid", "#0e7490");
const brandText = v("brand-contrast", "#ffffff");
const link = v("brand-fg", "#0e7490");

const toneRule = (name: string, palette: string, fallbackFg: string, fallbackBg: string) =>
  `.aic-tone-${name}{color:${v(`${palette}-fg`, fallbackFg)};background:${v(`${palette}-subtle`, fallbackBg)};` +
  `border-color:${v(`${palette}-muted`, fallbackBg)}}`;

export const CSS = [
  `.aic{color:${fg};font-size:0.875rem;line-height:1.45;display:flex;flex-direction:column;gap:12px;padding:4px 8px 24px}`,
  `.aic h2{font-size:1.25rem;font-weight:600;margin:0}`,
  `.aic h3{font-size:1rem;font-weight:600;margin:8px 0 4px}`,
  `.aic-head{display:flex;align-items:center;gap:12px;flex-wrap:wrap}`,
  `.aic-tabs{display:flex;gap:4px;border-bottom:1px solid ${border};flex-wrap:wrap}`,
  `.aic-tab{background:none;border:none;border-bottom:2px solid transparent;color:${muted};padding:8px 12px;` +
    `font:inherit;cursor:pointer;margin-bottom:-1px}`,
  `.aic-tab[aria-selected=true]{color:${fg};border-bottom-color:${brand};font-weight:600}`,
  `.aic-filters{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-end}`,
  `.aic-field{display:flex;flex-direction:column;gap:2px;font-size:0.75rem;color:${muted}}`,
  `.aic input,.aic select,.aic textarea{font:inherit;font-size:0.875rem;color:${fg};background:${bg};` +
    `border:1px solid ${strong};border-radius:4px;padding:5px 8px;min-width:0}`,
  `.aic textarea{width:100%;min-height:70px;box-sizing:border-box}`,
  `.aic input:focus,.aic select:focus,.aic textarea:focus{outline:2px solid ${brand};outline-offset:-1px}`,
  `.aic-btn{font:inherit;font-size:0.875rem;border-radius:4px;padding:6px 12px;cursor:pointer;` +
    `border:1px solid ${strong};background:${bg};color:${fg}}`,
  `.aic-btn:hover{background:${panel}}`,
  `.aic-btn:disabled{opacity:0.5;cursor:default}`,
  `.aic-btn-primary{background:${brand};color:${brandText};border-color:${brand}}`,
  `.aic-btn-primary:hover{background:${brand};filter:brightness(1.1)}`,
  `.aic-link{color:${link};background:none;border:none;padding:0;font:inherit;cursor:pointer;text-align:left}`,
  `.aic-link:hover{text-decoration:underline}`,
  `.aic-table-wrap{overflow-x:auto;border:1px solid ${border};border-radius:6px}`,
  `.aic-table{width:100%;border-collapse:collapse;font-size:0.8125rem}`,
  `.aic-table th{text-align:left;font-weight:600;color:${muted};background:${subtle};padding:8px 10px;` +
    `border-bottom:1px solid ${border};white-space:nowrap;user-select:none}`,
  `.aic-table th[data-sortable]{cursor:pointer}`,
  `.aic-table td{padding:7px 10px;border-bottom:1px solid ${border};vertical-align:top;white-space:nowrap}`,
  `.aic-table td.aic-wrap{white-space:normal;min-width:160px}`,
  `.aic-table td .aic-mono{word-break:normal}`,
  `.aic-table tr:last-child td{border-bottom:none}`,
  `.aic-table tbody tr[data-clickable]{cursor:pointer}`,
  `.aic-table tbody tr:hover td{background:${subtle}}`,
  `.aic-table tbody tr[aria-selected=true] td{background:${panel}}`,
  `.aic-mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:0.8125rem;word-break:break-all}`,
  `.aic-pager{display:flex;gap:8px;align-items:center;color:${muted};font-size:0.8125rem}`,
  `.aic-badge{display:inline-block;border:1px solid transparent;border-radius:4px;padding:0 6px;font-size:0.75rem;` +
    `font-weight:500;white-space:nowrap}`,
  toneRule("ok", "success", "#15803d", "#dcfce7"),
  toneRule("bad", "failed", "#b91c1c", "#fee2e2"),
  toneRule("warn", "warning", "#b45309", "#fef3c7"),
  toneRule("info", "info", "#1d4ed8", "#dbeafe"),
  `.aic-panel{border:1px solid ${border};border-radius:6px;padding:12px 16px;background:${bg}}`,
  `.aic-cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:12px}`,
  `.aic-card{border:1px solid ${border};border-radius:6px;padding:12px 16px;background:${subtle}}`,
  `.aic-card-label{color:${muted};font-size:0.75rem;text-transform:uppercase;letter-spacing:0.04em}`,
  `.aic-card-value{font-size:1.25rem;font-weight:600;margin-top:2px}`,
  `.aic-dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}`,
  `.aic-dl dt{color:${muted}}`,
  `.aic-dl dd{margin:0;min-width:0}`,
  `.aic-pre{background:${panel};border-radius:4px;padding:10px;overflow:auto;max-height:420px;margin:0;` +
    `font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:0.78rem;white-space:pre-wrap;word-break:break-all}`,
  `.aic-note{padding:8px 12px;border-radius:4px;border:1px solid transparent}`,
  `.aic-muted{color:${muted}}`,
  `.aic-split{display:grid;grid-template-columns:minmax(0,1fr) minmax(380px,40%);gap:12px;align-items:start}`,
  `@media (max-width:1100px){.aic-split{grid-template-columns:minmax(0,1fr)}}`,
  `.aic-timeline{list-style:none;margin:0;padding:0 0 0 18px;border-left:2px solid ${border}}`,
  `.aic-timeline li{position:relative;padding:4px 0 8px 8px}`,
  `.aic-timeline li::before{content:"";position:absolute;left:-25px;top:9px;width:10px;height:10px;` +
    `border-radius:50%;background:${bg};border:2px solid ${strong}}`,
  `.aic-timeline li[data-tone=ok]::before{border-color:${v("success-solid", "#16a34a")}}`,
  `.aic-timeline li[data-tone=bad]::before{border-color:${v("failed-solid", "#dc2626")}}`,
  `.aic-timeline li[data-tone=warn]::before{border-color:${v("warning-solid", "#d97706")}}`,
  `.aic-run{margin:14px 0 4px;font-weight:600}`,
].join("\n");

/** Adds the console's style sheet to the page once. */
export const installStyles = (): void => {
  if (document.getElementById("airflow-integrity-console-css")) return;
  const style = document.createElement("style");
  style.id = "airflow-integrity-console-css";
  style.textContent = CSS;
  document.head.appendChild(style);
};
