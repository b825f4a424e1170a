"""Demo data: ~200 customers with valid credit codes, contacts, follow-ups, 50 leads, 80 opportunities
across the stages, orders and tickets, split between sales1 (华东) and sales2 (华南). Idempotent."""
from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from core import clock
from core.extensions import db
from plugins.crm import creditcode
from plugins.crm.models import Contact, Customer, FollowUp, Lead, Opportunity, Order, Ticket

REGIONS = {
    "sales1": ("310000", [("上海", "上海"), ("江苏", "南京"), ("江苏", "苏州"), ("浙江", "杭州"), ("浙江", "宁波")]),
    "sales2": ("440000", [("广东", "广州"), ("广东", "深圳"), ("广东", "东莞"), ("福建", "厦门"), ("广西", "南宁")]),
}
INDUSTRIES = ("制造业", "软件和信息技术", "批发零售", "建筑", "医药", "物流")
WORDS = ("华信", "远航", "恒通", "博元", "启明", "鼎盛", "海纳", "天成", "瑞丰", "中科", "嘉禾", "新锐", "同创",
         "金桥", "宏图", "万象", "凯达", "正泰", "安捷", "云帆")
KINDS = ("科技", "贸易", "制造", "实业", "电子", "物流", "医疗", "建设", "信息", "机械")
SURNAMES = "王李张刘陈杨黄赵周吴"
STAGES = ("initial", "qualified", "proposal", "contract", "won", "lost")


def create_demo_data(company) -> None:
    if db.session.scalar(select(Customer.id).where(Customer.credit_code == creditcode.make(1, "310000"))):
        return
    rnd = random.Random(2026)
    now = clock.now()
    customers = []
    for n in range(200):
        username = "sales1" if n % 2 == 0 else "sales2"
        region, places = REGIONS[username]
        user = company.users[username]
        province, city = places[n // 2 % len(places)]
        name = f"{city}{WORDS[n % 20]}{KINDS[n // 20 % 10]}有限公司"
        customers.append(Customer(
            name=name, credit_code=creditcode.make(n + 1, region), industry=INDUSTRIES[n % len(INDUSTRIES)],
            province=province, city=city, level="ABC"[n % 3], source=("展会", "官网", "转介绍", "电话营销")[n % 4],
            tags=["重点"] if n % 7 == 0 else [], address=f"{city}市示例路{n + 1}号", owner_id=user.id,
            department_id=user.department_id, created_by_id=user.id, last_followup_at=now - timedelta(days=n % 25)))
    db.session.add_all(customers)
    db.session.flush()
    contacts, followups, opportunities, orders, tickets = [], [], [], [], []
    for n, c in enumerate(customers):
        contacts.append(Contact(customer_id=c.id, name=f"{SURNAMES[n % 10]}经理", title="采购经理",
                                mobile=f"139{n:08d}", email=f"buyer{n}@example.com", wechat=f"wx{n}",
                                is_primary=True, owner_id=c.owner_id, department_id=c.department_id))
        followups.append(FollowUp(customer_id=c.id, kind=("call", "visit", "wechat", "email", "meeting")[n % 5],
                                  content="沟通年度采购需求，客户关注交期与价格。", happened_at=c.last_followup_at,
                                  next_at=now + timedelta(days=n % 14 + 1) if n % 4 == 0 else None,
                                  owner_id=c.owner_id, department_id=c.department_id))
    for n in range(80):
        c = customers[n * 2 % 200 + n % 2]
        stage = STAGES[n % len(STAGES)]
        opportunities.append(Opportunity(
            customer_id=c.id, name=f"{c.name[:6]}项目{n + 1}", amount=Decimal(rnd.randrange(2, 80) * 10000),
            expected_close=(now + timedelta(days=rnd.randrange(10, 120))).date(), stage=stage,
            lost_reason="价格过高" if stage == "lost" else "", owner_id=c.owner_id, department_id=c.department_id))
    db.session.add_all(contacts + followups + opportunities)
    db.session.flush()
    for n, opp in enumerate(o for o in opportunities if o.stage == "won"):
        orders.append(Order(opportunity_id=opp.id, customer_id=opp.customer_id, number=f"SO-DEMO-{n + 1:04d}",
                            amount=opp.amount, status="confirmed" if n % 2 else "draft",
                            lines=[{"product": "年度服务包", "quantity": "1", "price": str(opp.amount)}],
                            owner_id=opp.owner_id, department_id=opp.department_id))
    for n in range(20):
        c = customers[n * 9]
        tickets.append(Ticket(customer_id=c.id, subject=("安装咨询", "交付延期投诉", "功能建议")[n % 3] + f"{n + 1}",
                              kind=("inquiry", "complaint", "suggestion")[n % 3], priority=("normal", "high")[n % 2],
                              sla_due_at=now + timedelta(hours=24 - n * 2), assignee_id=c.owner_id,
                              status=("open", "resolved")[n % 2], satisfaction=(n % 5) + 1 if n % 2 else None,
                              owner_id=c.owner_id, department_id=c.department_id))
    leads = []
    for n in range(50):
        username = ("sales1", "sales2")[n % 2]
        user = company.users[username]
        province = REGIONS[username][1][n % 5][0]
        assigned = n < 40
        leads.append(Lead(name=f"{SURNAMES[n % 10]}先生", company=f"{province}{WORDS[(n + 7) % 20]}商贸有限公司",
                          mobile=f"137{n:08d}", email=f"lead{n}@example.com", source=("官网表单", "展会", "广告")[n % 3],
                          province=province, status="assigned" if assigned else "new", assigned_at=now if assigned else None,
                          owner_id=user.id if assigned else None, department_id=user.department_id if assigned else None))
    db.session.add_all(orders + tickets + leads)
    db.session.flush()
