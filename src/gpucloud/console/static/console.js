// The gpucloud web console: SSH keys managed through the public API, in plain JavaScript.
//
// The API key lives in sessionStorage only (this tab, until sign-out or the tab closes)
// and travels in the x-api-key header, never in a URL or a cookie. Every piece of text
// that comes from the API is put in the page with textContent, never as HTML.
"use strict";

(() => {
  const API = "/gpu-cloud/ssh-keys";
  const STORAGE_KEY = "gpucloud.console.apiKey";
  const MAX_FILE_BYTES = 64 * 1024;

  // The same markers as the server's parser (gpucloud.pubkey.parse): PEM, PKCS#8,
  // OpenSSH and ssh.com private keys, PuTTY files, and an OpenSSH private key body
  // without its armour lines (the base64 of "openssh-key-v1\0").
  const PRIVATE_KEY_MARKER = new RegExp(
    "(?:BEGIN|END)\\s+(?:[A-Z0-9]{1,20}\\s+){0,4}PRIVATE\\s+KEY" +
      "|PuTTY-User-Key-File-|Private-Lines:|Private-MAC:" +
      "|b3BlbnNzaC1rZXktdjEA",
  );
  const PRIVATE_KEY_MESSAGE =
    "This is a private key, which must stay secret and never be uploaded; " +
    "upload the public key instead: the contents of the .pub file next to it, " +
    "for example ~/.ssh/id_ed25519.pub";

  // Key types as `ssh-keygen -l` names them.
  const TYPE_LABELS = {
    "ssh-ed25519": "ED25519",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "ssh-rsa": "RSA",
    "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
  };

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  // In the table, the day alone (the exact time is the element's title).
  const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

  const $ = (id) => {
    const element = document.getElementById(id);
    if (element === null) throw new Error(`console: no element #${id}`);
    return element;
  };

  const ui = {
    alert: $("alert"),
    session: $("session"),
    sessionPrefix: $("session-key-prefix"),
    signOut: $("sign-out"),
    signinView: $("signin-view"),
    signinTitle: $("signin-title"),
    signinNotice: $("signin-notice"),
    signinForm: $("signin-form"),
    signinButton: $("sign-in"),
    apiKey: $("api-key"),
    keysView: $("keys-view"),
    keysTitle: $("keys-title"),
    addJump: $("add-jump"),
    status: $("status"),
    keysCard: $("keys-card"),
    keysCount: $("keys-count"),
    keysLoading: $("keys-loading"),
    keysEmpty: $("keys-empty"),
    tableWrap: $("keys-table-wrap"),
    keysBody: $("keys-body"),
    addForm: $("add-form"),
    addError: $("add-error"),
    addSubmit: $("add-submit"),
    keyName: $("key-name"),
    keyText: $("key-text"),
    keyExpiry: $("key-expiry"),
    keyFile: $("key-file"),
    renameDialog: $("rename-dialog"),
    renameForm: $("rename-form"),
    renameName: $("rename-name"),
    renameSubmit: $("rename-submit"),
    deleteDialog: $("delete-dialog"),
    deleteForm: $("delete-form"),
    deleteName: $("delete-name"),
    deleteDetail: $("delete-detail"),
    deleteDefaultNote: $("delete-default-note"),
    deleteError: $("delete-error"),
    deleteSubmit: $("delete-submit"),
    certDialog: $("cert-dialog"),
    certForm: $("cert-form"),
    certKeyName: $("cert-key-name"),
    certValidFor: $("cert-valid-for"),
    certError: $("cert-error"),
    certResult: $("cert-result"),
    certText: $("cert-text"),
    certValidAfter: $("cert-valid-after"),
    certValidBefore: $("cert-valid-before"),
    certSerial: $("cert-serial"),
    certPrincipal: $("cert-principal"),
    certCopy: $("cert-copy"),
    certSubmit: $("cert-submit"),
  };

  // Which input shows the API's `details[].field` problems, per form.
  const ADD_FIELDS = { name: ui.keyName, publicKey: ui.keyText, expiresAt: ui.keyExpiry };
  const RENAME_FIELDS = { name: ui.renameName };

  let apiKey = null;
  let keys = [];

  // ---- The API ------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, details, retryAfter) {
      super(message);
      this.status = status;
      this.details = Array.isArray(details) ? details : [];
      this.retryAfter = retryAfter;
    }

    // 403, or the 404 of an API key that matches none: the key in this tab is no good.
    get isAuthProblem() {
      return this.status === 403 || (this.status === 404 && /\bAPI key\b/.test(this.message));
    }

    get isMissingKey() {
      return this.status === 404 && !this.isAuthProblem;
    }
  }

  async function api(method, path, body, key = apiKey) {
    const headers = { accept: "application/json", "x-api-key": key ?? "" };
    const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch {
      throw new ApiError(0, "The server could not be reached; check your connection and try again");
    }
    if (response.status === 204) return null;
    let payload = null;
    if ((response.headers.get("content-type") ?? "").includes("application/json")) {
      payload = await response.json().catch(() => null);
    }
    if (response.ok) return payload;
    let message = payload?.message ?? `The server answered ${response.status} ${response.statusText}`;
    const retryAfter = response.headers.get("retry-after");
    if (response.status === 429 && retryAfter) {
      message = `${message}; try again in ${retryAfter} s`;
    }
    throw new ApiError(response.status, message, payload?.details, retryAfter);
  }

  const listKeys = (key) => api("GET", "", undefined, key);
  const createKey = (name, publicKey, expiresAt) => api("POST", "", { name, publicKey, expiresAt });
  const renameKey = (id, name) => api("PATCH", `/${encodeURIComponent(id)}`, { name });
  const makeDefault = (id) => api("PATCH", `/${encodeURIComponent(id)}/makedefault`);
  const deleteKey = (id) => api("DELETE", `/${encodeURIComponent(id)}`);
  const certifyKey = (id, validFor) =>
    api("POST", `/${encodeURIComponent(id)}/certificate`, { validFor });

  // ---- Small helpers ----------------------------------------------------------------

  function element(tag, { className, text, attrs } = {}, children = []) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  }

  function icon(paths) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    for (const d of paths) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  const ICON_COPY = ["M9 9h10v10H9z", "M5 15V5h10"];
  const ICON_CHECK = ["M5 12.5l4.5 4.5L19 7.5"];

  const quoted = (name) => `“${name}”`;

  function commentOf(publicKey) {
    const parts = publicKey.split(" ");
    return parts.length > 2 ? parts.slice(2).join(" ") : "";
  }

  function announce(message) {
    // Cleared first, so that the same message twice is announced twice.
    ui.status.replaceChildren();
    window.setTimeout(() => {
      ui.status.replaceChildren(element("p", { className: "status", text: message }));
    }, 50);
  }

  function showAlert(message) {
    ui.alert.textContent = message;
    ui.alert.hidden = !message;
  }

  function setFieldError(input, message) {
    const error = $(`${input.id}-error`);
    error.textContent = message ?? "";
    error.hidden = !message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function setFormError(node, message) {
    node.textContent = message ?? "";
    node.hidden = !message;
  }

  function setBusy(button, busy, busyLabel) {
    if (busy) {
      button.dataset.label = button.textContent;
      button.textContent = busyLabel;
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
    } else {
      if (button.dataset.label !== undefined) button.textContent = button.dataset.label;
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  // Puts the API's 400 `details` (or a 409) next to the fields they concern; returns
  // the first input that shows a problem, or null if the error belongs to no field.
  function showApiFieldErrors(error, fields) {
    let first = null;
    const mark = (field, message) => {
      const input = fields[field];
      if (!input) return false;
      setFieldError(input, message);
      first ??= input;
      return true;
    };
    if (error.status === 400) {
      for (const detail of error.details) mark(detail.field, detail.message);
    } else if (error.status === 409) {
      // The same name, or the same public key (SPEC 3): the message says which.
      const field = /^An SSH key named /.test(error.message) || !fields.publicKey ? "name" : "publicKey";
      mark(field, error.message);
    }
    return first;
  }

  function looksLikePrivateKey(text) {
    return PRIVATE_KEY_MARKER.test(text);
  }

  // ---- Signing in and out -----------------------------------------------------------

  function showSignedOut(notice, { warning = false } = {}) {
    apiKey = null;
    keys = [];
    sessionStorage.removeItem(STORAGE_KEY);
    // Nothing of the last session stays in the page: its keys, messages or form input.
    ui.keysBody.replaceChildren();
    ui.status.replaceChildren();
    ui.addForm.reset();
    clearAddErrors();
    ui.session.hidden = true;
    ui.keysView.hidden = true;
    ui.signinView.hidden = false;
    showAlert("");
    ui.signinNotice.textContent = notice ?? "";
    ui.signinNotice.hidden = !notice;
    ui.signinNotice.classList.toggle("notice-info", !warning);
    ui.apiKey.value = "";
    setFieldError(ui.apiKey, "");
    document.title = "Sign in · gpucloud console";
  }

  function showSignedIn() {
    ui.sessionPrefix.textContent = `${apiKey.slice(0, 8)}…`;
    ui.session.hidden = false;
    ui.signinView.hidden = true;
    ui.keysView.hidden = false;
    document.title = "SSH keys · gpucloud console";
  }

  // The key in this tab was refused: back to the sign-in form, saying why.
  function signOutBecause(error) {
    showSignedOut(`Your API key was refused (${error.message}). Sign in with a valid API key.`, {
      warning: true,
    });
    ui.signinTitle.focus();
  }

  async function onSignIn(event) {
    event.preventDefault();
    const candidate = ui.apiKey.value.trim();
    ui.signinNotice.hidden = true;
    if (!candidate) {
      setFieldError(ui.apiKey, "Enter your API key");
      ui.apiKey.focus();
      return;
    }
    setFieldError(ui.apiKey, "");
    setBusy(ui.signinButton, true, "Signing in…");
    try {
      const list = await listKeys(candidate);
      apiKey = candidate;
      sessionStorage.setItem(STORAGE_KEY, candidate);
      ui.apiKey.value = "";
      keys = list;
      showSignedIn();
      render();
      ui.keysTitle.focus();
      announce(`Signed in. ${countText(keys.length)}.`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const hint = error.isAuthProblem ? "; check that you copied the whole key" : "";
      setFieldError(ui.apiKey, error.message + hint);
      ui.apiKey.focus();
    } finally {
      setBusy(ui.signinButton, false);
    }
  }

  function onSignOut() {
    showSignedOut("You have signed out. The API key was removed from this tab.");
    ui.signinTitle.focus();
  }

  // ---- The list -----------------------------------------------------------------------

  const countText = (n) => (n === 1 ? "1 SSH key" : `${n} SSH keys`);

  async function load({ quiet = false } = {}) {
    if (!quiet) {
      ui.keysCard.setAttribute("aria-busy", "true");
      ui.keysLoading.hidden = false;
      ui.keysEmpty.hidden = true;
      ui.tableWrap.hidden = true;
      ui.keysCount.textContent = "";
    }
    try {
      keys = await listKeys();
      showAlert("");
      render();
      return true;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.isAuthProblem) signOutBecause(error);
      else showAlert(`The SSH keys could not be loaded: ${error.message}`);
      return false;
    } finally {
      ui.keysCard.removeAttribute("aria-busy");
      ui.keysLoading.hidden = true;
    }
  }

  function render() {
    ui.keysLoading.hidden = true;
    ui.keysCount.textContent = keys.length ? countText(keys.length) : "";
    ui.keysEmpty.hidden = keys.length > 0;
    ui.tableWrap.hidden = keys.length === 0;
    ui.keysBody.replaceChildren(...keys.map(row));
  }

  function row(key) {
    const nameCell = element("th", { attrs: { scope: "row", role: "rowheader" } }, [
      element("div", { className: "name-line" }, [
        element("span", { className: "key-name", text: key.name, attrs: { tabindex: "-1" } }),
        ...(key.isDefault ? [element("span", { className: "badge", text: "Default" })] : []),
      ]),
    ]);
    const comment = commentOf(key.publicKey);
    if (comment) nameCell.append(element("div", { className: "key-comment", text: comment }));

    const fingerprint = element("code", { className: "fingerprint", text: key.fingerprint });
    const copy = element("button", {
      className: "btn-icon copy-btn",
      attrs: {
        type: "button",
        "aria-label": `Copy fingerprint of ${key.name}`,
        title: "Copy fingerprint",
      },
    }, [icon(ICON_COPY)]);
    copy.addEventListener("click", () => copyFingerprint(key, copy, fingerprint));

    const time = timeOf(key.createdAt);
    const expired = key.expiresAt !== null && new Date(key.expiresAt) <= new Date();
    const expires = key.expiresAt === null
      ? [element("span", { className: "muted", text: "Never" })]
      : [timeOf(key.expiresAt), ...(expired ? [" ", element("span", { className: "badge badge-expired", text: "Expired" })] : [])];
    const lastUsed = key.lastUsedAt === null
      ? [element("span", { className: "muted", text: "Never" })]
      : [timeOf(key.lastUsedAt)];

    const actions = element("div", { className: "row-actions" });
    if (!key.isDefault) {
      const button = element("button", {
        className: "btn btn-sm",
        text: "Make default",
        attrs: { type: "button", "aria-label": `Make ${key.name} the default key`, "data-action": "default" },
      });
      button.addEventListener("click", () => onMakeDefault(key, button));
      actions.append(button);
    }
    const rename = element("button", {
      className: "btn btn-sm",
      text: "Rename",
      attrs: { type: "button", "aria-label": `Rename ${key.name}`, "data-action": "rename" },
    });
    rename.addEventListener("click", () => openRename(key, rename));
    const remove = element("button", {
      className: "btn btn-sm btn-danger-quiet",
      text: "Delete",
      attrs: { type: "button", "aria-label": `Delete ${key.name}`, "data-action": "delete" },
    });
    remove.addEventListener("click", () => openDelete(key, remove));
    actions.append(certificateButton(key), rename, remove);

    // data-label names the cell where small screens show each row as a card.
    const cell = (label, options, children) =>
      element("td", { ...options, attrs: { role: "cell", "data-label": label, ...options.attrs } }, children);
    return element("tr", { attrs: { role: "row", "data-key-id": key._id } }, [
      nameCell,
      cell("Type", { text: TYPE_LABELS[key.keyType] ?? key.keyType, attrs: { title: key.keyType } }),
      cell("Bits", { className: "num", text: String(key.keyBits) }),
      cell("Fingerprint", {}, [element("div", { className: "fingerprint-cell" }, [fingerprint, copy])]),
      cell("Created", { className: "nowrap" }, [time]),
      cell("Expires", { className: "nowrap expires" }, expires),
      cell("Last used", { className: "nowrap last-used" }, lastUsed),
      element("td", { className: "actions-col", attrs: { role: "cell" } }, [actions]),
    ]);
  }

  function timeOf(iso) {
    return element("time", { text: dayFormat.format(new Date(iso)), attrs: { datetime: iso, title: iso } });
  }

  // The expiry the add form asks for: null (never), or that many days from now.
  function chosenExpiry() {
    const days = Number(ui.keyExpiry.value);
    return days ? new Date(Date.now() + days * 86400000).toISOString() : null;
  }

  function rowOf(id) {
    return ui.keysBody.querySelector(`tr[data-key-id="${CSS.escape(id)}"]`);
  }

  function focusRow(id, { highlight = false } = {}) {
    const tr = rowOf(id);
    if (!tr) {
      ui.keysTitle.focus();
      return;
    }
    if (highlight) {
      tr.classList.add("row-new");
      window.setTimeout(() => tr.classList.remove("row-new"), 2500);
    }
    tr.querySelector(".key-name").focus();
  }

  async function copyFingerprint(key, button, code) {
    try {
      await navigator.clipboard.writeText(key.fingerprint);
      button.replaceChildren(icon(ICON_CHECK));
      button.classList.add("copied");
      window.setTimeout(() => {
        button.replaceChildren(icon(ICON_COPY));
        button.classList.remove("copied");
      }, 1500);
      announce(`Copied the fingerprint of ${quoted(key.name)}`);
    } catch {
      // No clipboard access (an insecure origin, or permission refused): select it.
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      announce("The fingerprint is selected; press Ctrl+C to copy it");
    }
  }

  // When an action's key is gone (deleted in another tab), show the list as it is.
  async function keyWentAway(name) {
    await load({ quiet: true });
    announce(`${quoted(name)} no longer exists; the list is up to date`);
    ui.keysTitle.focus();
  }

  // ---- Adding a key -------------------------------------------------------------------

  function clearAddErrors() {
    setFieldError(ui.keyName, "");
    setFieldError(ui.keyText, "");
    setFieldError(ui.keyExpiry, "");
    setFieldError(ui.keyFile, "");
    setFormError(ui.addError, "");
  }

  // Runs as the user types or pastes, and again before sending: a private key is
  // refused here, so that it never leaves the browser.
  function checkKeyText() {
    const refused = looksLikePrivateKey(ui.keyText.value);
    setFieldError(ui.keyText, refused ? PRIVATE_KEY_MESSAGE : "");
    return !refused;
  }

  async function onFileChosen() {
    const file = ui.keyFile.files?.[0];
    setFieldError(ui.keyFile, "");
    if (!file) return;
    if (file.size > MAX_FILE_BYTES) {
      setFieldError(ui.keyFile, `${file.name} is too large to be a public key; choose the .pub file`);
      ui.keyFile.value = "";
      return;
    }
    const text = await file.text();
    if (looksLikePrivateKey(text)) {
      // Not copied into the page at all: the private key stays in the file.
      ui.keyFile.value = "";
      setFieldError(ui.keyFile, `${file.name}: ${PRIVATE_KEY_MESSAGE}`);
      ui.keyFile.focus();
      return;
    }
    const publicKey = text.trim();
    ui.keyText.value = publicKey;
    checkKeyText();
    if (!ui.keyName.value.trim()) {
      // The key's comment (often user@host) is a good first name; else the file's name.
      const oneLine = !/[\r\n]/.test(publicKey);
      const comment = oneLine ? commentOf(publicKey.split(/\s+/).join(" ")) : "";
      ui.keyName.value = comment || file.name.replace(/\.pub$/i, "");
    }
    announce(`Read ${file.name}; check the name, then add the key`);
  }

  async function onAdd(event) {
    event.preventDefault();
    clearAddErrors();
    const name = ui.keyName.value;
    const publicKey = ui.keyText.value;
    let invalid = null;
    if (!publicKey.trim()) {
      setFieldError(ui.keyText, "Paste a public key, or choose a .pub file");
      invalid = ui.keyText;
    } else if (!checkKeyText()) {
      invalid = ui.keyText;
    }
    if (!name.trim()) {
      setFieldError(ui.keyName, "Give the key a name, such as the machine it is on");
      invalid = ui.keyName;
    }
    if (invalid) {
      invalid.focus();
      return;
    }
    setBusy(ui.addSubmit, true, "Adding…");
    try {
      const created = await createKey(name, publicKey, chosenExpiry());
      ui.addForm.reset();
      await load({ quiet: true });
      focusRow(created._id, { highlight: true });
      const until = created.expiresAt ? ` It expires ${dateFormat.format(new Date(created.expiresAt))}.` : "";
      const extra = (created.isDefault ? " It is your default key." : "") + until;
      announce(`Added ${quoted(created.name)}.${extra}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.isAuthProblem) {
        signOutBecause(error);
        return;
      }
      const field = showApiFieldErrors(error, ADD_FIELDS);
      if (field) {
        field.focus();
      } else {
        setFormError(ui.addError, error.message);
        ui.keyName.focus();
      }
    } finally {
      setBusy(ui.addSubmit, false);
    }
  }

  // ---- Make default -------------------------------------------------------------------

  async function onMakeDefault(key, button) {
    setBusy(button, true, "Working…");
    try {
      await makeDefault(key._id);
      await load({ quiet: true });
      focusRow(key._id);
      announce(`${quoted(key.name)} is now your default key`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      setBusy(button, false);
      if (error.isAuthProblem) signOutBecause(error);
      else if (error.isMissingKey) await keyWentAway(key.name);
      else showAlert(`${quoted(key.name)} could not be made the default: ${error.message}`);
    }
  }

  // ---- Dialogs: rename and delete ---------------------------------------------------

  let dialogKey = null;
  let dialogOpener = null;

  function openDialog(dialog, key, opener) {
    dialogKey = key;
    dialogOpener = opener;
    dialog.returnValue = "";
    dialog.showModal();
  }

  function closeDialog(dialog, result) {
    dialog.close(result);
  }

  for (const dialog of [ui.renameDialog, ui.deleteDialog, ui.certDialog]) {
    for (const button of dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => closeDialog(dialog, "cancel"));
    }
    dialog.addEventListener("close", () => {
      // Cancelled (button or Escape): focus goes back to the button that opened it, or
      // to its successor when the list was drawn again meanwhile (after a certificate).
      if (dialog.returnValue === "done" || !dialogOpener) return;
      const action = dialogOpener.dataset.action;
      const again = dialogKey && action
        ? rowOf(dialogKey._id)?.querySelector(`[data-action="${action}"]`)
        : null;
      (dialogOpener.isConnected ? dialogOpener : again)?.focus();
    });
  }

  function openRename(key, opener) {
    setFieldError(ui.renameName, "");
    ui.renameName.value = key.name;
    openDialog(ui.renameDialog, key, opener);
    ui.renameName.focus();
    ui.renameName.select();
  }

  async function onRename(event) {
    event.preventDefault();
    const key = dialogKey;
    const name = ui.renameName.value;
    setFieldError(ui.renameName, "");
    if (!name.trim()) {
      setFieldError(ui.renameName, "Give the key a name, such as the machine it is on");
      ui.renameName.focus();
      return;
    }
    if (name.trim() === key.name) {
      closeDialog(ui.renameDialog, "cancel");
      return;
    }
    setBusy(ui.renameSubmit, true, "Saving…");
    try {
      const renamed = await renameKey(key._id, name);
      closeDialog(ui.renameDialog, "done");
      await load({ quiet: true });
      const tr = rowOf(key._id);
      if (tr) tr.querySelector("[data-action=rename]").focus();
      else ui.keysTitle.focus();
      announce(`Renamed ${quoted(key.name)} to ${quoted(renamed.name)}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.isAuthProblem || error.isMissingKey) {
        closeDialog(ui.renameDialog, "done");
        if (error.isAuthProblem) signOutBecause(error);
        else await keyWentAway(key.name);
        return;
      }
      if (!showApiFieldErrors(error, RENAME_FIELDS)) setFieldError(ui.renameName, error.message);
      ui.renameName.focus();
    } finally {
      setBusy(ui.renameSubmit, false);
    }
  }

  function openDelete(key, opener) {
    setFormError(ui.deleteError, "");
    ui.deleteName.textContent = quoted(key.name);
    ui.deleteDetail.textContent = `(${TYPE_LABELS[key.keyType] ?? key.keyType} ${key.fingerprint})`;
    const others = keys.filter((k) => k._id !== key._id);
    if (key.isDefault && others.length) {
      const successor = others[others.length - 1];
      ui.deleteDefaultNote.textContent = `This is your default key; ${quoted(successor.name)}, your most recently added key, will become the default.`;
      ui.deleteDefaultNote.hidden = false;
    } else {
      ui.deleteDefaultNote.hidden = true;
    }
    openDialog(ui.deleteDialog, key, opener);
  }

  async function onDelete(event) {
    event.preventDefault();
    const key = dialogKey;
    const index = keys.findIndex((k) => k._id === key._id);
    setBusy(ui.deleteSubmit, true, "Deleting…");
    try {
      await deleteKey(key._id);
      closeDialog(ui.deleteDialog, "done");
      await load({ quiet: true });
      // Focus moves to the key that took its place, else the one before, else the title.
      const next = keys[Math.min(index, keys.length - 1)];
      if (next) focusRow(next._id);
      else ui.keysTitle.focus();
      const successor = key.isDefault ? keys.find((k) => k.isDefault) : null;
      announce(`Deleted ${quoted(key.name)}.` + (successor ? ` ${quoted(successor.name)} is now your default key.` : ""));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.isAuthProblem || error.isMissingKey) {
        closeDialog(ui.deleteDialog, "done");
        if (error.isAuthProblem) signOutBecause(error);
        else await keyWentAway(key.name);
        return;
      }
      setFormError(ui.deleteError, error.message);
    } finally {
      setBusy(ui.deleteSubmit, false);
    }
  }

  // ---- Certificates: a short-lived SSH certificate of a key ---------------------------

  function certificateButton(key) {
    const button = element("button", {
      className: "btn btn-sm",
      text: "Get certificate",
      attrs: { type: "button", "aria-label": `Get a certificate for ${key.name}`, "data-action": "certificate" },
    });
    button.addEventListener("click", () => openCertificate(key, button));
    return button;
  }

  function openCertificate(key, opener) {
    setFormError(ui.certError, "");
    setFieldError(ui.certValidFor, "");
    ui.certKeyName.textContent = quoted(key.name);
    ui.certResult.hidden = true;
    ui.certCopy.hidden = true;
    ui.certText.value = "";
    ui.certSubmit.textContent = "Get certificate";
    openDialog(ui.certDialog, key, opener);
    ui.certValidFor.focus();
  }

  // Certificates are judged by UTC clocks: their times are shown in UTC, and say so.
  const utcFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: "medium", timeStyle: "medium", timeZone: "UTC",
  });

  function showTime(node, value) {
    node.textContent = `${utcFormat.format(new Date(value))} UTC`;
    node.setAttribute("datetime", value);
    node.title = value;
  }

  async function onCertify(event) {
    event.preventDefault();
    const key = dialogKey;
    setFormError(ui.certError, "");
    setFieldError(ui.certValidFor, "");
    setBusy(ui.certSubmit, true, "Signing…");
    try {
      const cert = await certifyKey(key._id, ui.certValidFor.value);
      ui.certText.value = cert.certificate;
      showTime(ui.certValidAfter, cert.validAfter);
      showTime(ui.certValidBefore, cert.validBefore);
      ui.certSerial.textContent = cert.serial;
      ui.certPrincipal.textContent = cert.principals.join(", ");
      ui.certResult.hidden = false;
      ui.certCopy.hidden = false;
      ui.certSubmit.dataset.label = "Get another";  // setBusy puts it back when done
      // The key's "Last used" is now (SPEC 9): draw the list again behind the dialog.
      await load({ quiet: true });
      ui.certText.focus();
      ui.certText.select();
      announce(`Certificate for ${quoted(key.name)}, valid until ${ui.certValidBefore.textContent}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.isAuthProblem || error.isMissingKey) {
        closeDialog(ui.certDialog, "done");
        if (error.isAuthProblem) signOutBecause(error);
        else await keyWentAway(key.name);
        return;
      }
      if (!showApiFieldErrors(error, { validFor: ui.certValidFor })) {
        setFormError(ui.certError, error.message);
      }
    } finally {
      setBusy(ui.certSubmit, false);
    }
  }

  async function copyCertificate() {
    try {
      await navigator.clipboard.writeText(ui.certText.value);
      ui.certCopy.textContent = "Copied";
      window.setTimeout(() => { ui.certCopy.textContent = "Copy certificate"; }, 1500);
      announce("Copied the certificate");
    } catch {
      // No clipboard access (an insecure origin, or permission refused): select it.
      ui.certText.focus();
      ui.certText.select();
      announce("The certificate is selected; press Ctrl+C to copy it");
    }
  }

  // ---- Wiring -------------------------------------------------------------------------

  ui.signinForm.addEventListener("submit", onSignIn);
  ui.signOut.addEventListener("click", onSignOut);
  ui.addForm.addEventListener("submit", onAdd);
  ui.keyText.addEventListener("input", checkKeyText);
  ui.keyName.addEventListener("input", () => setFieldError(ui.keyName, ""));
  ui.keyFile.addEventListener("change", onFileChosen);
  ui.renameForm.addEventListener("submit", onRename);
  ui.deleteForm.addEventListener("submit", onDelete);
  ui.certForm.addEventListener("submit", onCertify);
  ui.certCopy.addEventListener("click", copyCertificate);
  ui.addJump.addEventListener("click", () => {
    ui.keyName.scrollIntoView({ block: "center" });
    ui.keyName.focus();
  });

  apiKey = sessionStorage.getItem(STORAGE_KEY);
  if (apiKey) {
    showSignedIn();
    load();
  } else {
    showSignedOut();
  }
})();
