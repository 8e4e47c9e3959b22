// Starts Swagger UI on the document this server publishes. It lives in a file of its own so
// the page runs under the app's CSP (script-src 'self'), which refuses inline scripts.
"use strict";

(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    // The default posts the document to validator.swagger.io for a badge: nothing leaves.
    validatorUrl: null,
    // A token typed into "Authorize" is forgotten with the tab, not kept in localStorage.
    persistAuthorization: false,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
  });
})();
