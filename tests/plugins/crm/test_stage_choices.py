"""Choices an administrator sets (the CRM's stages, ``metadata["choices"]``) are offered, shown and
imported by their labels, as fixed ``OneOf`` choices are."""
from __future__ import annotations

from flask_babel import force_locale

from core import resources as records
from core.extensions import db
from core.imports import service
from core.schemas import choice_from_text, choices
from plugins.crm import settings

from tests.core.test_imports import app, login, user  # noqa: F401


def test_stages_are_a_select_in_forms_and_filters_labels_in_lists_and_read_by_label_in_imports(app):
    with app.app_context():
        opportunity = records.get_resource("crm.opportunity")
        records.create(opportunity, user("sales1"), {**opportunity.sample(0), "stage": "qualified"})
        db.session.commit()
        field = opportunity.schema._declared_fields["stage"]
        with force_locale("zh_CN"):
            labels = dict(settings.stage_choices())
            assert [code for code, _label in choices(field)] == settings.stage_keys()
            qualified = str(labels["qualified"])
            assert choice_from_text(field, qualified) == "qualified"
            assert service._row_data(opportunity, user("sales1"), ["name", "stage"], ["项目", qualified]) == {
                "name": "项目", "stage": "qualified"}
    client = login(app, "sales1")
    page = client.get("/crm/opportunities").get_data(as_text=True)
    assert f"<td>{qualified}</td>" in page and "<td>qualified</td>" not in page
    assert '<select class="form-select" id="flt-stage" name="stage">' in page  # the filter is a choice too
    assert f'<option value="qualified">{qualified}</option>' in page
    chosen = client.get("/crm/opportunities?stage=qualified").get_data(as_text=True)
    assert f'<option value="qualified" selected>{qualified}</option>' in chosen and f"<td>{qualified}</td>" in chosen
    assert f"<td>{qualified}</td>" not in client.get("/crm/opportunities?stage=won").get_data(as_text=True)
    form = client.get("/crm/opportunities/new").get_data(as_text=True)
    assert '<select' in form and 'name="stage"' in form and 'value="proposal"' in form
