"""Practitioner queries (tenant-scoped by the session)."""

from __future__ import annotations

from sqlalchemy import Select, func, literal_column, or_, select

from core.repository import Repository
from domain.practitioners.models import Practitioner


class PractitionerRepository(Repository[Practitioner]):
    """Queries over practitioners."""

    model = Practitioner
    label = "Practitioner"

    def filtered(
        self,
        *,
        speciality: str | None = None,
        is_active: bool | None = None,
        search: str | None = None,
    ) -> Select[Practitioner]:
        """Practitioners matching the filters, ordered by last then first name."""
        stmt = self.base()
        if speciality:
            stmt = stmt.where(func.lower(Practitioner.speciality) == speciality.lower())
        if is_active is not None:
            stmt = stmt.where(Practitioner.is_active.is_(is_active))
        if search:
            full_name = func.lower(
                Practitioner.first_name.op("||")(literal_column("' '")).op("||")(Practitioner.last_name)
            )
            term = search.lower()
            stmt = stmt.where(
                or_(
                    full_name.contains(term, autoescape=True),
                    func.lower(Practitioner.email_primary).contains(term, autoescape=True),
                )
            )
        return stmt.order_by(Practitioner.last_name, Practitioner.first_name, Practitioner.id)

    async def specialities(self) -> list[str]:
        """Distinct non-empty specialities, alphabetically."""
        stmt = (
            select(Practitioner.speciality)
            .where(Practitioner.speciality.is_not(None), Practitioner.speciality != "")
            .distinct()
            .order_by(Practitioner.speciality)
        )
        return [s for s in (await self.session.scalars(stmt)).all() if s]
