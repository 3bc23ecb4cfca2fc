"use strict";
// What both operator pages share (index.html, the dashboard, and who-pays.html): the words they
// both use, the language toggle, numbers in the language's format, fetching, the error box, the
// live status and its stream. A plain script: each page loads it before its own script, which
// uses the names below.

const $ = id => document.getElementById(id);

// --- words: each page's own (useWords) over these, in Bahasa Indonesia or English -----------
const COMMON_WORDS = {
  id: {
    locale: "id-ID", switchTo: "EN", htmlLang: "id",
    connecting: "menghubungkan…", live: "langsung", reconnecting: "menyambung ulang…",
    levels: {national: "Nasional", province: "Provinsi", regency: "Kabupaten/Kota",
             district: "Kecamatan", village: "Desa/Kelurahan"},
    updated: "diperbarui", couldNotLoad: (c, m) => `Gagal memuat ${c}: ${m}`,
  },
  en: {
    locale: "en-GB", switchTo: "ID", htmlLang: "en",
    connecting: "connecting…", live: "live", reconnecting: "reconnecting…",
    levels: {national: "National", province: "Province", regency: "Regency/City",
             district: "District", village: "Village"},
    updated: "updated", couldNotLoad: (c, m) => `Could not load ${c}: ${m}`,
  },
};
let WORDS = COMMON_WORDS;
let lang = "id";  // the one last chosen on either page
try { if (localStorage.getItem("ucj-lang") === "en") lang = "en"; } catch (_) { /* private mode */ }
const w = () => WORDS[lang];
function useWords(words) {
  WORDS = {id: {...COMMON_WORDS.id, ...words.id}, en: {...COMMON_WORDS.en, ...words.en}};
}

// The page in the chosen language: numbers (percentages with `pctDigits` decimals), <html lang>,
// every [data-t] element, the toggle's label and the status line.
let nf, pf;
function applyWords(pctDigits) {
  nf = new Intl.NumberFormat(w().locale);
  pf = new Intl.NumberFormat(w().locale, {minimumFractionDigits: pctDigits, maximumFractionDigits: pctDigits});
  document.documentElement.lang = w().htmlLang;
  document.querySelectorAll("[data-t]").forEach(el => { el.textContent = w()[el.dataset.t]; });
  $("lang").textContent = w().switchTo;
  setStatus(live);
}
// The toggle switches to the other language, kept for the next visit; `redraw` shows it.
function onLanguageToggle(redraw) {
  $("lang").addEventListener("click", () => {
    lang = lang === "id" ? "en" : "id";
    try { localStorage.setItem("ucj-lang", lang); } catch (_) { /* private mode */ }
    redraw();
  });
}

// --- numbers -------------------------------------------------------------------------------
const num = v => v == null ? "–" : nf.format(v);
const pct = v => v == null ? "–" : pf.format(v * 100) + "%";

// A figure's new text; a change of a figure already shown flashes.
function setText(el, text) {
  if (!el) return;
  if (el.textContent !== text) {
    const had = el.textContent !== "" && el.dataset.ready === "1";
    el.textContent = text;
    el.dataset.ready = "1";
    if (had) { el.classList.remove("flash"); void el.offsetWidth; el.classList.add("flash"); }
  }
}

// A bar's fill (a ratio, 0 to 1) and, where the bar has one, its target line.
function setBar(bar, ratio, target) {
  bar.firstElementChild.style.width = ratio == null ? "0" : Math.max(0, Math.min(100, ratio * 100)) + "%";
  const line = bar.querySelector("i.target");
  if (line) {
    line.style.display = target == null ? "none" : "block";
    if (target != null) line.style.left = `calc(${Math.min(100, target * 100)}% - 1px)`;
  }
}

// --- the service's answers -----------------------------------------------------------------
function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.style.display = message ? "block" : "none";
}

async function getJSON(url) {
  const res = await fetch(url, {headers: {Accept: "application/json"}});
  const body = await res.json().catch(() => ({}));
  const detail = typeof body.detail === "string" && body.detail;
  if (!res.ok) throw new Error(detail || `${res.status} ${res.statusText}`);
  return body;
}

// Regions: a code's ancestors from ID down to itself, and the level below each level.
const CHILD_LEVEL = {national: "province", province: "regency", regency: "district", district: "village"};
function ancestors(code) {
  if (code === "ID") return ["ID"];
  const parts = code.split(".");
  return ["ID", ...parts.map((_, i) => parts.slice(0, i + 1).join("."))];
}

// --- live status -----------------------------------------------------------------------------
let live = null;  // null: connecting, true: live, false: reconnecting
function setStatus(state, suffix) {
  live = state;
  $("dot").className = "dot " + (state ? "live" : state === false ? "down" : "");
  $("status").textContent = (state ? w().live : state === false ? w().reconnecting : w().connecting)
    + (suffix ? " · " + suffix : "");
}

// The counters stream (Server-Sent Events): the status follows the connection; `on` maps an
// event's name to its handler.
function openStream(url, on) {
  const source = new EventSource(url);
  source.onopen = () => setStatus(true);
  source.onerror = () => setStatus(false);
  for (const [name, handle] of Object.entries(on)) source.addEventListener(name, handle);
  return source;
}
