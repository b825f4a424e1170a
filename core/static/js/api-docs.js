// The API reference page (/api/docs): Swagger UI reading the OpenAPI document. No inline script
// (the Content-Security-Policy forbids it): the page names the document in data-spec-url.
(function () {
  "use strict";

  function start() {
    var element = document.getElementById("api-docs");
    if (!element || !window.SwaggerUIBundle) { return; }
    var csrfToken = element.getAttribute("data-csrf-token");
    window.SwaggerUIBundle({
      domNode: element,
      url: element.getAttribute("data-spec-url"),
      deepLinking: true,
      validatorUrl: null, // never ask an outside validator: on-premise servers may be offline
      // "Try it out" uses the browser session, whose writes need the page's CSRF token.
      requestInterceptor: function (request) {
        var sameOrigin = new URL(request.url, window.location.href).origin === window.location.origin;
        if (sameOrigin && csrfToken && !request.headers["X-CSRFToken"]) {
          request.headers["X-CSRFToken"] = csrfToken;
        }
        return request;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
