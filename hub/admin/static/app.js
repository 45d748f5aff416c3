// Small behaviours without inline scripts (the CSP forbids them).
document.addEventListener("submit", function (e) {
  var form = e.target;
  var msg = form.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) { e.preventDefault(); }
});
document.addEventListener("change", function (e) {
  var sel = e.target;
  if (sel.matches && sel.matches("select[data-navigate]") && sel.value) {
    window.location.href = sel.value;
  }
});
// htmx requests carry the session's CSRF token (read from <meta name="csrf-token">).
document.addEventListener("htmx:configRequest", function (e) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { e.detail.headers["X-CSRF-Token"] = meta.getAttribute("content"); }
});
